// Names of what herd creates for a TrainingJob or an EvalJob: trainer and evaluator pods, and
// the headless Service that gives rank 0 a DNS name. Each is a DNS label (RFC 1123: at most 63
// of [a-z0-9-], alphanumeric at both ends; a Service's also starts with a letter, RFC 1035)
// and unique per object: a prefix of the object's name, a hash of its uid, then the part.
// Object names are DNS subdomains (up to 253 characters, dots allowed), so the prefix is cut
// and its dots become dashes; the hash keeps apart two objects whose names share the prefix,
// and an object deleted and created again under the same name.
import { createHash } from "node:crypto";
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node";
import type { ObjectRef } from "../../workflows/types.ts";
import { isConflict, refusedOnce, rejectionFailure } from "../kube-errors.ts";

const maxLabel = 63;

/** 8 hex digits of the object's uid: short, and distinct for any two objects in practice. */
export const objectHash = (uid: string) =>
  createHash("sha256").update(uid).digest("hex").slice(0, 8);

function label(o: ObjectRef, part: string, prefix = ""): string {
  const tail = `-${objectHash(o.uid)}-${part}`;
  const head = (prefix + o.name)
    .replaceAll(".", "-")
    .slice(0, maxLabel - tail.length)
    .replace(/-+$/, "");
  return head + tail;
}

/** Rank `rank`'s pod of attempt `attempt`; also the pod's hostname under the Service. */
export const trainerPodName = (o: ObjectRef, attempt: number, rank: number) =>
  label(o, `a${attempt}-r${rank}`);

/** The evaluator pod of an EvalJob's attempt. */
export const evaluatorPodName = (o: ObjectRef, attempt: number) => label(o, `eval-a${attempt}`);

/** The headless Service of a TrainingJob's pods; "job-" in front of a name like "7b-run". */
export const workersServiceName = (o: ObjectRef) =>
  label(o, "workers", /^[a-z]/.test(o.name) ? "" : "job-");

interface Owned {
  metadata?: { ownerReferences?: { uid: string }[] };
}

/**
 * Creates an object that `owner` owns. One that already exists is taken as this call's own
 * earlier try only if `owner` owns it; another's is an error naming both (a 409 used to be
 * taken as success whoever's object it was). That, and a refusal by the API server (Pod
 * Security, a webhook, a quota, validation), fail the activity without retries
 * (kube-errors.ts), for the workflow to report.
 */
export async function createOwned<T extends Owned>(
  what: string,
  owner: ObjectRef,
  create: () => Promise<unknown>,
  read: () => Promise<T>,
): Promise<void> {
  try {
    await refusedOnce(what, create);
  } catch (err) {
    if (!isConflict(err)) throw err;
    const existing = await read();
    if (!existing.metadata?.ownerReferences?.some((r) => r.uid === owner.uid))
      throw rejectionFailure({
        reason: "NameTaken",
        message: `${what} already exists and does not belong to ${owner.kind} ${owner.namespace}/${owner.name} (uid ${owner.uid}); delete it or rename the ${owner.kind}`,
        waits: false,
      });
  }
}

/** createOwned for one of `owner`'s pods, in the owner's namespace. */
export function createOwnedPod(core: CoreV1Api, owner: ObjectRef, pod: V1Pod): Promise<void> {
  const { namespace } = owner;
  const name = pod.metadata!.name!;
  return createOwned(
    `pod ${namespace}/${name}`,
    owner,
    () => core.createNamespacedPod({ namespace, body: pod }),
    () => core.readNamespacedPod({ namespace, name }),
  );
}
