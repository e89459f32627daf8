// Installs (or updates) herd's CRDs from crds/manifests by server-side apply and waits until
// the API server serves them. Used by `herd demo`, the tests and the benchmarks.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { parse } from "yaml";
import { kinds } from "./kinds.ts";

const manifests = path.join(path.dirname(fileURLToPath(import.meta.url)), "manifests");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function installCrds(kc: KubeConfig, fieldManager: string): Promise<void> {
  // Through the untyped custom-objects client: the typed one would serialize the CRD through
  // its model classes, which drop keys such as `default` and `x-kubernetes-validations`.
  const raw = kc.makeApiClient(CustomObjectsApi);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  for (const info of kinds) {
    const crd = parse(
      readFileSync(path.join(manifests, `${info.plural}.yaml`), "utf8"),
    ) as KubernetesObject;
    const name = crd.metadata!.name!;
    await raw.patchClusterCustomObject(
      {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        name,
        body: crd,
        fieldManager,
        force: true,
      },
      setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
    );
    for (let i = 0; ; i++) {
      const c = await ext.readCustomResourceDefinition({ name });
      if (c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True")) break;
      if (i > 300) throw new Error(`CRD ${name} not established after 30 s`);
      await sleep(100);
    }
  }
}
