// Where the integration tests find a real kube-apiserver and Temporal server.
//
// For now: KUBECONFIG and TEMPORAL_ADDRESS when both are set (e.g. from
// `node --import tsx test/api/standin.ts up`, or `herd dev env` once the local control plane
// lands), otherwise the tests skip with `skipReason`. At merge with test/cluster, this
// function starts (or reuses) the harness instead — see the report for the exact change.
import { KubeConfig } from "@kubernetes/client-node";

export interface ClusterEnv {
  kubeconfig: KubeConfig;
  kubeconfigPath: string;
  temporalAddress: string;
}

export const skipReason =
  "no cluster: set KUBECONFIG and TEMPORAL_ADDRESS (e.g. `eval $(node --import tsx test/api/standin.ts up)`)";

export async function clusterEnv(): Promise<ClusterEnv | undefined> {
  const kubeconfigPath = process.env.KUBECONFIG;
  const temporalAddress = process.env.TEMPORAL_ADDRESS;
  if (!kubeconfigPath || !temporalAddress) return undefined;
  const kubeconfig = new KubeConfig();
  kubeconfig.loadFromFile(kubeconfigPath);
  return { kubeconfig, kubeconfigPath, temporalAddress };
}
