// Kubernetes API clients that share one keep-alive connection pool. client-node 1.x makes a
// new https.Agent for every request, so each call would open a fresh TLS connection — a
// handshake per finalizer patch, event and status write. Here the kubeconfig still supplies
// the credentials (headers, client certificates, exec plugins) for every request; only the
// agent is shared. Used by the operator and by the worker's activities.
import https from "node:https";
import {
  createConfiguration,
  ServerConfiguration,
  type ApiConstructor,
  type ApiType,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from "@kubernetes/client-node";

class PooledKubeConfigAuth implements SecurityAuthentication {
  private agent?: Promise<https.Agent>;
  constructor(
    private readonly kc: KubeConfig,
    private readonly maxSockets: number,
  ) {}

  getName(): string {
    return "herd-pooled-kubeconfig";
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kc.applySecurityAuthentication(context);
    this.agent ??= this.makeAgent();
    context.setAgent(await this.agent);
  }

  private async makeAgent(): Promise<https.Agent> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const tls = (opts.agent as https.Agent | undefined)?.options ?? {};
    const cluster = this.kc.getCurrentCluster();
    return new https.Agent({
      ...tls,
      ...(cluster?.skipTLSVerify ? { rejectUnauthorized: false } : {}),
      ...(cluster?.tlsServerName ? { servername: cluster.tlsServerName } : {}),
      keepAlive: true,
      maxSockets: this.maxSockets,
    });
  }
}

/** Like kc.makeApiClient, with connections kept alive and shared by every client made here. */
export function pooledClients(kc: KubeConfig, maxSockets = 32) {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const https = cluster.server.startsWith("https:");
  const auth = new PooledKubeConfigAuth(kc, maxSockets);
  return <T extends ApiType>(apiClientType: ApiConstructor<T>): T =>
    https
      ? new apiClientType(
          createConfiguration({
            baseServer: new ServerConfiguration(cluster.server, {}),
            authMethods: { default: auth },
          }),
        )
      : kc.makeApiClient(apiClientType);
}
