// The one Temporal connection helper (workers/temporal-tls.ts) that the operator, the worker
// and the trainer pods use: what it reads from the environment, the errors that name the
// variable and file, and real mTLS. The Temporal dev server speaks plaintext only, so a
// TLS terminator that demands a client certificate from the test's own CA stands in front
// of it; the operator's client (Connection) and the worker's (NativeConnection) get through
// it with the helper's settings, and are turned away without a client certificate; so do
// the EvalSweep activities' schedule calls, which once connected without TLS.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { Connection } from "@temporalio/client";
import { NativeConnection } from "@temporalio/worker";
import { sweepActivities } from "../../workers/activities/sweep.ts";
import {
  TemporalTlsError,
  temporalConnectionOptions,
  temporalTls,
} from "../../workers/temporal-tls.ts";
import { clusterEnv } from "../api/env.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "herd-temporal-tls-"));
const file = (name: string) => path.join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

/** A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it. */
function makePki(): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt"),
    "-days",
    "1",
    "-subj",
    "/CN=herd-test-ca",
  );
  for (const [name, usage, san] of [
    ["server", "serverAuth", "IP:127.0.0.1,DNS:temporal.test"],
    ["client", "clientAuth", "DNS:herd-worker"],
  ] as const) {
    openssl(
      "req",
      ...ec,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
      "-subj",
      `/CN=${name}`,
    );
    writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.crt"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      file(`${name}.crt`),
      "-extfile",
      file(`${name}.ext`),
    );
  }
}

let proxy: tls.Server;
let proxyAddress: string;
const sockets = new Set<net.Socket>();
/** Why the TLS terminator turned handshakes away. */
const refused: string[] = [];

before(async () => {
  makePki();
  const { temporalAddress } = await clusterEnv();
  const [host, port] = [
    temporalAddress.slice(0, temporalAddress.lastIndexOf(":")),
    Number(temporalAddress.slice(temporalAddress.lastIndexOf(":") + 1)),
  ];
  proxy = tls.createServer(
    {
      key: readFileSync(file("server.key")),
      cert: readFileSync(file("server.crt")),
      ca: readFileSync(file("ca.crt")),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
    },
    (client) => {
      const upstream = net.connect(port, host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => s.destroy());
        s.on("close", () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    },
  );
  proxy.on("tlsClientError", (err) => refused.push(err.message));
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyAddress = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const mtlsEnv = () => ({
  TEMPORAL_TLS_CERT: file("client.crt"),
  TEMPORAL_TLS_KEY: file("client.key"),
  TEMPORAL_TLS_CA: file("ca.crt"),
  TEMPORAL_TLS_SERVER_NAME: "temporal.test",
});

test("no TLS variables: a plaintext connection", () => {
  assert.equal(temporalTls({}), undefined);
  assert.deepEqual(temporalConnectionOptions("t:7233", {}), { address: "t:7233" });
});

test("the files' bytes and the server name go into the TLS settings", () => {
  const t = temporalTls(mtlsEnv());
  assert.deepEqual(t?.clientCertPair?.crt, readFileSync(file("client.crt")));
  assert.deepEqual(t?.clientCertPair?.key, readFileSync(file("client.key")));
  assert.deepEqual(t?.serverRootCACertificate, readFileSync(file("ca.crt")));
  assert.equal(t?.serverNameOverride, "temporal.test");
  assert.deepEqual(temporalTls({ TEMPORAL_TLS: "true" }), {});
});

test("bad settings name the variable and the file", () => {
  assert.throws(
    () => temporalTls({ TEMPORAL_TLS_CERT: file("client.crt") }),
    (err: unknown) =>
      err instanceof TemporalTlsError && /TEMPORAL_TLS_KEY is not/.test(err.message),
  );
  assert.throws(
    () => temporalTls({ TEMPORAL_TLS_KEY: file("client.key") }),
    /TEMPORAL_TLS_CERT is not/,
  );
  const missing = file("nope.crt");
  assert.throws(
    () => temporalTls({ ...mtlsEnv(), TEMPORAL_TLS_CA: missing }),
    new RegExp(`TEMPORAL_TLS_CA=${missing}: cannot read it \\(ENOENT\\)`),
  );
});

test("the operator's client connects over mTLS, and is refused without a client certificate", async () => {
  const connection = await Connection.connect(temporalConnectionOptions(proxyAddress, mtlsEnv()));
  try {
    const info = await connection.workflowService.getSystemInfo({});
    assert.ok(info.serverVersion, "the server answered through the TLS terminator");
  } finally {
    await connection.close();
  }
  const { TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME } = mtlsEnv();
  await assert.rejects(async () => {
    const c = await Connection.connect({
      ...temporalConnectionOptions(proxyAddress, { TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME }),
      connectTimeout: 3000,
    });
    try {
      await c.workflowService.getSystemInfo({});
    } finally {
      await c.close();
    }
  });
  assert.ok(
    refused.some((m) => /certificate/i.test(m)),
    `the terminator refused for want of a client certificate: ${refused.join("; ")}`,
  );
});

test("the worker's native connection connects over mTLS", async () => {
  const connection = await NativeConnection.connect(
    temporalConnectionOptions(proxyAddress, mtlsEnv()),
  );
  try {
    const info = await connection.workflowService.getSystemInfo({});
    assert.ok(info.serverVersion, "the server answered through the TLS terminator");
  } finally {
    await connection.close();
  }
});

test("an EvalSweep's schedule activities connect over mTLS too", async () => {
  const { kubeconfig: kc } = await clusterEnv(); // the calls below touch Temporal only
  const object = {
    kind: "EvalSweep",
    namespace: "default",
    name: "tls-sweep",
    uid: "u-1",
  } as const;
  const sweep = sweepActivities(kc, {
    temporalAddress: proxyAddress,
    temporalNamespace: "default",
    env: mtlsEnv(),
  });
  await sweep.deleteSchedule(object); // no such schedule: answered, over mTLS
  const plaintext = sweepActivities(kc, {
    temporalAddress: proxyAddress,
    temporalNamespace: "default",
    env: {},
  });
  await assert.rejects(plaintext.deleteSchedule(object)); // as before the fix: no TLS at all
});
