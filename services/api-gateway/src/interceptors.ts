// The gateway's interceptors, inside @vecraft/common's metrics and error mapping:
//   1. access: authenticate the API key, check the method's role and the collection the
//      request names, apply the key's rate limits, and put the caller in the context;
//   2. validation metrics: count INVALID_ARGUMENT rejections by field kind.
// Handlers never look at keys; the few checks that need data (GetRequestLineage,
// ListCollections) read the caller from the context.
import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, type Interceptor } from "@connectrpc/connect";
import { InternalError, isVecraftError, type Logger } from "@vecraft/common";
import { callerOf, presentedKey, requireCollection, requireRole, requireUnscoped, type Caller, type KeyRing, type Role } from "./auth.js";
import { kCaller } from "./context.js";
import { fieldKind, type GatewayMetrics } from "./metrics.js";
import type { RateLimiter } from "./rate-limit.js";

interface MethodPolicy {
  /** The least role that may call the method. */
  readonly role: Role;
  /** The request field that names the collection the call touches, if any. */
  readonly collectionField?: "collection" | "name";
  /** When the collection field is empty: the call spans every collection and needs this role on all of them. */
  readonly unscopedRole?: Role;
}

/** Method name -> policy. A method missing here is refused to everyone but an unscoped admin. */
const POLICIES: Readonly<Record<string, MethodPolicy>> = {
  CreateCollection: { role: "admin", collectionField: "name" },
  DescribeCollection: { role: "reader", collectionField: "name" },
  ListCollections: { role: "reader" },
  DropCollection: { role: "admin", collectionField: "name" },
  Upsert: { role: "writer", collectionField: "collection" },
  Delete: { role: "writer", collectionField: "collection" },
  Search: { role: "reader", collectionField: "collection" },
  Get: { role: "reader", collectionField: "collection" },
  Query: { role: "reader", collectionField: "collection" },
  GetRecordHistory: { role: "reader", collectionField: "collection" },
  // The collections a request wrote are only known from its entries: the handler checks.
  GetRequestLineage: { role: "reader" },
  ListOperations: { role: "reader", collectionField: "collection", unscopedRole: "admin" },
  WatchChanges: { role: "reader", collectionField: "collection" },
  GetClusterStatus: { role: "reader" },
};

function authorize(caller: Caller, method: string, message: unknown): void {
  const policy = POLICIES[method];
  if (policy === undefined) {
    requireUnscoped(caller, "admin", method);
    return;
  }
  if (policy.collectionField === undefined) {
    requireRole(caller, policy.role, method);
    return;
  }
  const value = (message as Readonly<Record<string, unknown>> | undefined)?.[policy.collectionField];
  const collection = typeof value === "string" ? value : "";
  if (collection === "") {
    if (policy.unscopedRole !== undefined) requireUnscoped(caller, policy.unscopedRole, `${method} without a collection`);
    // Otherwise the handler rejects the empty name with INVALID_ARGUMENT.
    else requireRole(caller, policy.role, method);
    return;
  }
  requireCollection(caller, collection, policy.role, method);
}

function requestBytes(header: Headers, schema: DescMessage, message: unknown): number {
  const declared = Number(header.get("content-length") ?? "");
  if (Number.isSafeInteger(declared) && declared > 0) return declared;
  // gRPC requests carry no content length: measure the message itself.
  return toBinary(schema, message as Parameters<typeof toBinary>[1]).byteLength;
}

async function* once<T>(value: T): AsyncGenerator<T> {
  yield await Promise.resolve(value);
}

export interface AccessInterceptorOptions {
  readonly keys: KeyRing;
  readonly limiter: RateLimiter;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
}

export function accessInterceptor(opts: AccessInterceptorOptions): Interceptor {
  const { keys, limiter, metrics } = opts;
  const refuse = (e: unknown): never => {
    if (isVecraftError(e)) {
      if (e.code === Code.Unauthenticated) metrics.authFailures.inc({ reason: "unauthenticated" });
      else if (e.code === Code.PermissionDenied) metrics.authFailures.inc({ reason: "permission_denied" });
      else if (e.code === Code.ResourceExhausted) metrics.rateLimited.inc({ limit: String(e.details?.["limit"] ?? "requests") });
    }
    throw e;
  };
  return (next) => async (req) => {
    const method = req.method.name;
    let caller: Caller;
    try {
      caller = callerOf(keys.authenticate(presentedKey(req.header)));
    } catch (e) {
      return refuse(e);
    }
    let message: unknown;
    if (req.stream) {
      // Server streaming (WatchChanges): the one request message arrives as a stream.
      // Read it here, check it, and hand the handler a stream of the same message.
      if (req.method.methodKind !== "server_streaming") throw new InternalError(`${method}: client streams are not served`);
      const it = req.message[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done === true) throw new InternalError(`${method}: missing request message`);
      message = first.value;
      try {
        authorize(caller, method, message);
        limiter.admit(caller.principal, limiter.limitsBytes(caller.principal) ? requestBytes(new Headers(), req.method.input, message) : 0);
      } catch (e) {
        return refuse(e);
      }
      req.contextValues.set(kCaller, caller);
      return next({ ...req, message: once(first.value) });
    }
    message = req.message;
    try {
      authorize(caller, method, message);
      limiter.admit(caller.principal, limiter.limitsBytes(caller.principal) ? requestBytes(req.header, req.method.input, message) : 0);
    } catch (e) {
      return refuse(e);
    }
    req.contextValues.set(kCaller, caller);
    return next(req);
  };
}

/** Counts the gateway's INVALID_ARGUMENT rejections by method and field kind. */
export function validationMetricsInterceptor(metrics: GatewayMetrics): Interceptor {
  const count = (method: string, e: unknown): void => {
    if (isVecraftError(e) && e.code === Code.InvalidArgument) {
      const field = e.details?.["field"];
      metrics.validationRejections.inc({ method, kind: typeof field === "string" ? fieldKind(field) : "other" });
    }
  };
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const inner = res.message;
      const method = req.method.name;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* inner;
          } catch (e) {
            count(method, e);
            throw e;
          }
        })(),
      };
    } catch (e) {
      count(req.method.name, e);
      throw e;
    }
  };
}
