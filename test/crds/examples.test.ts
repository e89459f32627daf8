// Every manifest in examples/ is a valid herd object, and the local files it names that are
// not made by a command in its comments (.herd/) or fetched (s3://, ~/.cache/herd) exist in
// the checkout, so a fresh clone runs them as written.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseHerdObject } from "../../crds/manifest.ts";
import { expandGroups, runnableTask } from "../../workers/eval/registry.ts";

const examples = path.resolve(import.meta.dirname, "../../examples");

test("examples/*.yaml parse as herd objects and name data that is there", () => {
  const files = readdirSync(examples).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 3, files.join(", "));
  for (const f of files) {
    const file = path.join(examples, f);
    const o = parseHerdObject(readFileSync(file, "utf8"), file, (m) => assert.fail(m));
    const uris: string[] = [];
    if (o.kind === "TrainingJob") {
      if (o.spec.tokenizer?.uri) uris.push(o.spec.tokenizer.uri);
      for (const s of o.spec.data.sources) if (s.format === "text") uris.push(s.uri);
    }
    if (o.kind === "EvalJob")
      for (const t of expandGroups(o.spec.tasks)) {
        if (t.uri) uris.push(t.uri);
        // a registry task: its data is herd's own
        else assert.ok(existsSync(runnableTask(t).uri), `${f}: task ${t.name}`);
      }
    const shipped = (u: string) => !/^(s3:\/\/|~\/)/.test(u) && !u.includes(".herd/");
    assert.ok(
      uris.some(shipped) || o.kind === "TrainingJob" || o.kind === "EvalJob",
      `${f}: names no file of data/`,
    );
    for (const uri of uris.filter(shipped))
      assert.ok(existsSync(path.resolve(examples, uri)), `${f}: ${uri} does not exist`);
  }
});
