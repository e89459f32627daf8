// What the API server's errors mean to herd: the two codes every caller checks (404, 409), the
// Status body's message, and which refusals no retry mends. A create that Pod Security, a
// webhook, a ValidatingAdmissionPolicy or schema validation refuses is refused again on every
// try; retrying it every 30 s forever, with status silent, was the bug. Such a refusal leaves
// the activity as a non-retryable ApplicationFailure of type `apiRejectedType` whose details
// the workflow reads (workflows/plumbing.ts rejectionOf).
import { ApiException } from "@kubernetes/client-node";
import { ApplicationFailure } from "@temporalio/common";
import { apiRejectedType, type Rejection } from "../workflows/types.ts";

export const isConflict = (err: unknown) => err instanceof ApiException && err.code === 409;
export const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

/** The API server's own words for an error: the message of its Status body, else the body. */
export function apiMessage(err: ApiException<unknown>): string {
  const body =
    err.body === undefined
      ? ""
      : typeof err.body === "string"
        ? err.body
        : JSON.stringify(err.body);
  try {
    const status = JSON.parse(body) as { message?: unknown } | null;
    if (typeof status?.message === "string" && status.message) return status.message;
  } catch {
    // not a Status object: the body itself says it
  }
  return body.trim() || `HTTP ${err.code}`;
}

/**
 * The refusal in `err`, when it is one no retry mends, as `Rejection` (reason, the API's
 * message, and whether waiting can mend it); undefined for anything else (5xx, 429, timeouts,
 * network errors: the activity's retries are for those).
 */
export function rejectionOf(what: string, err: unknown): Rejection | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const code = err.code;
  if (code !== 400 && code !== 403 && code !== 422) return undefined;
  const said = apiMessage(err);
  const message = `${what}: the API server refused it (${code}): ${said}`;
  // Some refusals pass without the job changing, so they are waited on: a ResourceQuota frees
  // up as other work ends (and a new one refuses everything until the controller has counted
  // its usage), and the worker's missing RBAC permission is mended by an administrator
  // (herd's installation is at fault, not the job).
  if (code === 403 && /exceeded quota/i.test(said))
    return { reason: "QuotaExceeded", message, waits: true };
  if (code === 403 && /status unknown for quota/i.test(said))
    return { reason: "QuotaNotCounted", message, waits: true };
  if (code === 403 && /cannot create resource/i.test(said))
    return { reason: "Forbidden", message, waits: true };
  if (/admission webhook .* denied/i.test(said))
    return { reason: "AdmissionWebhookDenied", message, waits: false };
  if (code === 403 && /violates PodSecurity/i.test(said))
    return { reason: "PodSecurityViolation", message, waits: false };
  const reason = code === 403 ? "Refused" : code === 422 ? "Invalid" : "BadRequest";
  return { reason, message, waits: false };
}

/** The failure an activity throws for a refusal: not retried, its details the Rejection. */
export function rejectionFailure(r: Rejection): ApplicationFailure {
  return ApplicationFailure.create({
    type: apiRejectedType,
    message: r.message,
    nonRetryable: true,
    details: [r],
  });
}

/** Runs an API call; a refusal no retry mends becomes `rejectionFailure`. */
export async function refusedOnce<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const r = rejectionOf(what, err);
    throw r ? rejectionFailure(r) : err;
  }
}
