// Ports for servers started later come from outside the kernel's ephemeral range, where no
// outbound connection or listen(0) can take them first; the control plane moves a state
// folder's old ports out of that range.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ensurePorts } from "./controlplane.ts";
import { ephemeralRange, freePort, inEphemeralRange, portFree } from "./ports.ts";

test("free ports are outside the ephemeral range, not taken, and bindable", async () => {
  const { low, high } = ephemeralRange();
  assert.ok(low > 1023 && high >= low, `range ${low}-${high}`);
  const taken = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const port = await freePort(taken);
    assert.ok(!inEphemeralRange(port), `${port} is in ${low}-${high}`);
    assert.ok(port > 1023 && port < 65536, `${port}`);
    assert.ok(!taken.has(port), `${port} was promised already`);
    taken.add(port);
  }
  assert.equal(await portFree([...taken][0]!), true);
});

test("a port something listens on is not free", async () => {
  const server = net.createServer();
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  try {
    assert.equal(await portFree(port), false);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test("the control plane keeps its free ports and replaces those in the ephemeral range", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "herd-ports-"));
  const kept = await freePort();
  const { low } = ephemeralRange();
  writeFileSync(path.join(dir, "ports.json"), JSON.stringify({ etcd: kept, apiserver: low + 7 }));
  const ports = await ensurePorts(dir, false);
  assert.equal(ports.etcd, kept);
  assert.notEqual(ports.apiserver, low + 7);
  const all = Object.values(ports);
  assert.equal(new Set(all).size, all.length, "every component has its own port");
  for (const p of all) assert.ok(!inEphemeralRange(p), `${p}`);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, "ports.json"), "utf8")), ports);
  // With the components running, every recorded port stays, wherever it is.
  writeFileSync(path.join(dir, "ports.json"), JSON.stringify({ ...ports, apiserver: low + 7 }));
  assert.equal((await ensurePorts(dir, true)).apiserver, low + 7);
});
