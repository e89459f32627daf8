// How every herd process (operator, control worker, trainer pod) reaches Temporal: the address,
// and TLS or mTLS from files named in the environment. The variable names are the Temporal
// CLI's, so one Secret mounted as files serves herd and `temporal` alike:
//   TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY  client certificate and key (mTLS), both or neither
//   TEMPORAL_TLS_CA                      CA that signed the server's certificate
//   TEMPORAL_TLS_SERVER_NAME             name to check the server's certificate against
//   TEMPORAL_TLS=true                    TLS with the system's CAs and no client certificate
// With none of them set the connection is plaintext, as with the local dev server.
import { readFileSync } from "node:fs";
import type { TLSConfig } from "@temporalio/client";

export class TemporalTlsError extends Error {
  override name = "TemporalTlsError";
}

function readPem(env: NodeJS.ProcessEnv, variable: string): Buffer | undefined {
  const file = env[variable];
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TemporalTlsError(
      `${variable}=${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
}

/** The TLS settings the environment asks for; undefined for a plaintext connection. */
export function temporalTls(env: NodeJS.ProcessEnv = process.env): TLSConfig | undefined {
  const crt = readPem(env, "TEMPORAL_TLS_CERT");
  const key = readPem(env, "TEMPORAL_TLS_KEY");
  if (crt && !key)
    throw new TemporalTlsError("TEMPORAL_TLS_CERT is set but TEMPORAL_TLS_KEY is not");
  if (key && !crt)
    throw new TemporalTlsError("TEMPORAL_TLS_KEY is set but TEMPORAL_TLS_CERT is not");
  const ca = readPem(env, "TEMPORAL_TLS_CA");
  const serverName = env.TEMPORAL_TLS_SERVER_NAME || undefined;
  const asked = /^(1|true|yes)$/i.test(env.TEMPORAL_TLS ?? "");
  if (!crt && !ca && !serverName && !asked) return undefined;
  return {
    ...(serverName && { serverNameOverride: serverName }),
    ...(ca && { serverRootCACertificate: ca }),
    ...(crt && key && { clientCertPair: { crt, key } }),
  };
}

/** Options for `Connection.connect` and `NativeConnection.connect`. */
export function temporalConnectionOptions(
  address: string,
  env: NodeJS.ProcessEnv = process.env,
): { address: string; tls?: TLSConfig } {
  const tls = temporalTls(env);
  return tls ? { address, tls } : { address };
}
