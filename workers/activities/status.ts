// The status activity: the only writer of a herd object's status. A JSON merge patch on the
// status subresource, carrying metadata.uid so that a patch for a deleted-and-recreated object
// of the same name fails instead of landing on the new one.
import {
  ApiException,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from "@kubernetes/client-node";
import { group, version } from "../../crds/common.ts";
import { apiMessage } from "../kube-errors.ts";
import { kindInfo } from "../../crds/kinds.ts";
import type { StatusPatch, StatusWriteResult } from "../../workflows/types.ts";

/** True when the API server says the object is not there any more, or is another one now. */
export function isGone(err: unknown): boolean {
  if (!(err instanceof ApiException)) return false;
  if (err.code === 404) return true;
  return (err.code === 409 || err.code === 422) && /uid/i.test(apiMessage(err));
}

export function statusActivities(kc: KubeConfig) {
  const api = kc.makeApiClient(CustomObjectsApi);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    async patchStatus({ object, status }: StatusPatch): Promise<StatusWriteResult> {
      try {
        await api.patchNamespacedCustomObjectStatus(
          {
            group,
            version,
            namespace: object.namespace,
            plural: kindInfo(object.kind).plural,
            name: object.name,
            body: { metadata: { uid: object.uid }, status },
            fieldManager: "herd-workflow",
          },
          mergePatch,
        );
        return "written";
      } catch (err) {
        if (isGone(err)) return "gone";
        throw err;
      }
    },
  };
}
