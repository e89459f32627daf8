// The safetensors reader/writer and the checkpoint directory protocol, on real files.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomMatrix } from "../../native/reference.ts";
import {
  CheckpointError,
  listCheckpoints,
  loadCheckpoint,
  readLatest,
  saveCheckpoint,
  stepName,
  type VerifiedFiles,
} from "../../workers/trainer/checkpoint.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
} from "../../workers/trainer/safetensors.ts";

const tensors = [
  { name: "a", shape: [3, 5], data: randomMatrix(15, 1) },
  { name: "b.weight", shape: [7], data: randomMatrix(7, 2) },
  { name: "empty", shape: [0, 4], data: new Float32Array(0) },
];

// A safetensors file with a hand-written header, for the malformed cases.
function withHeader(header: unknown, dataBytes = 0, rawHeader?: string): Buffer {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

test("safetensors round-trips tensors, shapes and metadata with an aligned header", () => {
  const bytes = encodeSafetensors(tensors, { format: "herd" });
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
  const { tensors: back, metadata } = decodeSafetensors(bytes, "t");
  assert.deepEqual(metadata, { format: "herd" });
  assert.deepEqual([...back.keys()], ["a", "b.weight", "empty"]);
  for (const t of tensors) {
    assert.deepEqual(back.get(t.name)!.shape, t.shape);
    assert.deepEqual(back.get(t.name)!.data, t.data);
  }
});

test("safetensors rejects malformed files with an error naming the problem", () => {
  const f32 = (shape: number[], begin: number, end: number) => ({
    dtype: "F32",
    shape,
    data_offsets: [begin, end],
  });
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(5), /shorter than the 8-byte header length/],
    [
      (() => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64LE(2n ** 63n, 0);
        return b;
      })(),
      /header length .* exceeds/,
    ],
    [withHeader(null, 0, "{not json"), /header is not valid JSON/],
    [withHeader([1, 2]), /header is not a JSON object/],
    [
      withHeader({ x: { dtype: "F16", shape: [2], data_offsets: [0, 4] } }, 4),
      /dtype "F16" is not supported/,
    ],
    [
      withHeader({ x: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4),
      /shape must be an array of non-negative integers/,
    ],
    [
      withHeader({ x: { dtype: "F32", shape: [1], data_offsets: [0] } }, 4),
      /data_offsets must be \[begin, end\]/,
    ],
    [withHeader({ x: f32([2], 0, 8) }, 4), /lie outside the 4 data bytes/],
    [withHeader({ x: f32([2], 0, 4) }, 4), /4 bytes for shape \[2\]/],
    [withHeader({ x: f32([1], 0, 4), y: f32([1], 0, 4) }, 4), /overlap or hole/],
    [withHeader({ x: f32([1], 0, 4) }, 8), /4 data bytes belong to no tensor/],
    [withHeader({ __metadata__: { k: 1 } }), /__metadata__.k is not a string/],
  ];
  for (const [bytes, message] of cases)
    assert.throws(
      () => decodeSafetensors(bytes, "bad.safetensors"),
      (err: Error) => {
        assert.ok(err instanceof SafetensorsError, `${err.name}: ${err.message}`);
        assert.match(err.message, /^bad\.safetensors: /);
        assert.match(err.message, message);
        return true;
      },
    );
});

test("safetensors never fails except with SafetensorsError on truncated or bit-flipped files", () => {
  const good = encodeSafetensors(tensors);
  let rejected = 0;
  for (let i = 0; i < 400; i++) {
    const bad = Buffer.from(good);
    const at = (i * 7919) % bad.length;
    const variant = i % 3 === 0 ? bad.subarray(0, at) : bad;
    if (i % 3 !== 0) variant[at] = variant[at]! ^ (1 << (i % 8));
    try {
      decodeSafetensors(variant, "fuzz");
    } catch (err) {
      assert.ok(err instanceof SafetensorsError, String(err));
      rejected++;
    }
  }
  assert.ok(rejected > 100, `only ${rejected} of 400 damaged files were rejected`);
});

function files(step: number) {
  return {
    "model.safetensors": encodeSafetensors(tensors),
    "trainer.json": JSON.stringify({ step }),
  };
}
const required = ["model.safetensors", "trainer.json"];
const openStep = (f: VerifiedFiles) => JSON.parse(f.get("trainer.json")!.toString()).step as number;

test("saving writes step dirs, a manifest, LATEST, and prunes only older checkpoints", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-ckpt-"));
  try {
    for (const step of [10, 20, 30]) saveCheckpoint(dir, step, files(step), 2);
    assert.deepEqual(listCheckpoints(dir), [30, 20]);
    assert.equal(readLatest(dir), 30);
    assert.equal(readFileSync(path.join(dir, "LATEST"), "utf8"), "step-000000030\n");
    const manifest = JSON.parse(
      readFileSync(path.join(dir, stepName(30), "manifest.json"), "utf8"),
    );
    assert.equal(manifest.step, 30);
    assert.equal(manifest.files["model.safetensors"].size, files(30)["model.safetensors"].length);
    assert.match(manifest.files["trainer.json"].sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith(".")),
      [],
      "no temporaries left",
    );
    const warnings: string[] = [];
    const loaded = loadCheckpoint(dir, required, openStep, (w) => warnings.push(w));
    assert.equal(loaded?.value, 30);
    assert.deepEqual(warnings, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a truncated or bit-flipped latest checkpoint falls back to the previous one with a warning", () => {
  for (const damage of ["truncate", "flip", "manifest", "unpublished"] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), "herd-ckpt-"));
    try {
      for (const step of [1, 2, 3]) saveCheckpoint(dir, step, files(step), 5);
      const latest = path.join(dir, stepName(3));
      const model = path.join(latest, "model.safetensors");
      if (damage === "truncate") truncateSync(model, 100);
      if (damage === "flip") {
        const b = readFileSync(model);
        b[b.length - 3] = b[b.length - 3]! ^ 0x10;
        writeFileSync(model, b);
      }
      if (damage === "manifest") writeFileSync(path.join(latest, "manifest.json"), "{ broken");
      if (damage === "unpublished") writeFileSync(path.join(dir, "LATEST"), "step-000000002\n");
      const warnings: string[] = [];
      const loaded = loadCheckpoint(dir, required, openStep, (w) => warnings.push(w));
      assert.equal(loaded?.step, 2, damage);
      if (damage === "unpublished") assert.deepEqual(warnings, [], "LATEST is the authority");
      else {
        assert.equal(warnings.length, 1, damage);
        assert.match(warnings[0]!, /falling back to checkpoint step-000000002: step-000000003/);
        const reason = {
          truncate: /size 100, manifest says/,
          flip: /SHA-256 does not match/,
          manifest: /manifest.json unreadable/,
        }[damage];
        assert.match(warnings[0]!, reason);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("a checkpoint whose files verify but do not parse is skipped like a damaged one", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-ckpt-"));
  try {
    saveCheckpoint(dir, 1, files(1), 5);
    saveCheckpoint(
      dir,
      2,
      { "model.safetensors": Buffer.from("garbage!"), "trainer.json": "{}" },
      5,
    );
    const warnings: string[] = [];
    const open = (f: VerifiedFiles) => {
      decodeSafetensors(f.get("model.safetensors")!, "model.safetensors");
      return openStep(f);
    };
    assert.equal(loadCheckpoint(dir, required, open, (w) => warnings.push(w))?.value, 1);
    assert.match(warnings[0]!, /model\.safetensors: header length/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("when no checkpoint verifies, loading fails with every reason, and an empty dir is a fresh start", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-ckpt-"));
  try {
    assert.equal(
      loadCheckpoint(dir, required, openStep, () => {}),
      undefined,
    );
    saveCheckpoint(dir, 7, files(7), 5);
    writeFileSync(
      path.join(dir, stepName(7), "manifest.json"),
      JSON.stringify({ format: "other" }),
    );
    assert.throws(
      () => loadCheckpoint(dir, required, openStep, () => {}),
      (err: Error) =>
        err instanceof CheckpointError &&
        /no usable checkpoint .* not a herd-checkpoint version 1 manifest/.test(err.message),
    );
    assert.ok(
      existsSync(path.join(dir, stepName(7))),
      "a bad checkpoint is never deleted by loading",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
