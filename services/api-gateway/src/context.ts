// Per-request values the auth interceptor sets and the handlers read. In a file of its
// own, as the Connect docs advise, so that interceptors and handlers import it without
// a cycle.
import { createContextKey } from "@connectrpc/connect";
import type { Caller } from "./auth.js";
import { ANONYMOUS } from "./auth.js";

/** Who is calling: set by the auth interceptor on every request. */
export const kCaller = createContextKey<Caller>(ANONYMOUS, { description: "The authenticated caller (API key) of the request" });
