// Where the integration tests find a real kube-apiserver and Temporal server: the cluster
// named by KUBECONFIG and TEMPORAL_ADDRESS when both are set (e.g. `eval "$(herd dev env)"`),
// otherwise the local control plane of test/cluster/, started once per test run.
import { KubeConfig } from "@kubernetes/client-node";
import { cluster } from "../cluster/harness.ts";
import type { ObjectStorage } from "../../workers/activities/training.ts";

export interface ClusterEnv {
  kubeconfig: KubeConfig;
  kubeconfigPath: string;
  temporalAddress: string;
  /** Object storage the control worker gives trainer pods (s3:// checkpoint URIs). */
  s3?: ObjectStorage;
}

export async function clusterEnv(): Promise<ClusterEnv> {
  let kubeconfigPath = process.env.KUBECONFIG;
  let temporalAddress = process.env.TEMPORAL_ADDRESS;
  if (!kubeconfigPath || !temporalAddress) {
    const c = await cluster();
    kubeconfigPath = c.kubeconfig;
    temporalAddress = c.temporalAddress;
  }
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(kubeconfigPath);
  return { kubeconfig, kubeconfigPath, temporalAddress };
}
