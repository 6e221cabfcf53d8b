// The two error kinds the gateway adds to @vecraft/common's hierarchy: they only exist at
// the public door. Both map to their Connect code through toConnectError like any
// VecraftError (HTTP 401 and 403 on the Connect JSON protocol).
import { Code } from "@connectrpc/connect";
import { VecraftError, type VecraftErrorOptions } from "@vecraft/common";

/** No API key, or one the gateway does not know. */
export class UnauthenticatedError extends VecraftError {
  override name = "UnauthenticatedError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.Unauthenticated, options);
  }
}

/** A known key whose role or collection scope does not allow the call. */
export class PermissionDeniedError extends VecraftError {
  override name = "PermissionDeniedError";
  constructor(message: string, options?: VecraftErrorOptions) {
    super(message, Code.PermissionDenied, options);
  }
}
