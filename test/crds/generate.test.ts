// The committed CRD manifests and docs/api.md are exactly what the schemas generate, and the
// generated schemas are structural, documented and carry the rules the API promises.
import { test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import {
  drift,
  openApiSchema,
  SchemaError,
  crdManifest,
  type JSONSchemaProps,
} from "../../crds/generate.ts";
import { kinds, kindInfo } from "../../crds/kinds.ts";

test("committed manifests and docs match the schemas (run `npm run crds` if this fails)", () => {
  assert.deepEqual(drift(), []);
});

function walk(
  s: JSONSchemaProps,
  where: string,
  visit: (s: JSONSchemaProps, where: string) => void,
) {
  visit(s, where);
  for (const [name, p] of Object.entries(s.properties ?? {})) walk(p, `${where}.${name}`, visit);
  if (s.items) walk(s.items, `${where}[]`, visit);
  if (s.additionalProperties) walk(s.additionalProperties, `${where}[*]`, visit);
}

test("every schema node is structural and every field documented", () => {
  for (const info of kinds) {
    const schema = openApiSchema(info);
    walk(schema, info.kind, (s, where) => {
      assert.ok(s.type, `${where}: no type`);
      for (const key of ["$schema", "const", "propertyNames", "anyOf", "oneOf"])
        assert.ok(!(key in s), `${where}: ${key}`);
      if (typeof s.exclusiveMinimum !== "undefined")
        assert.equal(typeof s.exclusiveMinimum, "boolean", where);
    });
    for (const part of ["spec", "status"] as const)
      walk(schema.properties![part]!, part, (s, where) => {
        for (const [name, p] of Object.entries(s.properties ?? {}))
          assert.ok(p.description, `${info.kind} ${where}.${name}: no description`);
      });
  }
});

test("an undocumented field or a union is refused by the generator", () => {
  const base = { ...kindInfo("TrainingJob") };
  const undocumented = z.object({ spec: z.object({ x: z.string() }), status: z.object({}) });
  assert.throws(() => openApiSchema({ ...base, schema: undocumented }), SchemaError);
  assert.throws(() => openApiSchema({ ...base, schema: undocumented }), /spec\.x: no description/);
  const union = z.object({
    spec: z.object({ x: z.union([z.string(), z.int()]).describe("x") }),
    status: z.object({}),
  });
  assert.throws(
    () => openApiSchema({ ...base, schema: union }),
    /spec\.x: anyOf is not structural/,
  );
});

test("the CRDs carry immutability, cross-field rules, defaults and the status subresource", () => {
  const tj = openApiSchema(kindInfo("TrainingJob"));
  const spec = tj.properties!.spec!;
  const rules = (s: JSONSchemaProps | undefined) =>
    (s?.["x-kubernetes-validations"] ?? []).map((r) => r.rule);
  for (const field of ["model", "tokenizer", "data", "training", "parallelism"] as const)
    assert.ok(rules(spec.properties![field]).includes("self == oldSelf"), field);
  assert.ok(rules(spec.properties!.checkpoint!.properties!.uri).includes("self == oldSelf"));
  assert.ok(!rules(spec.properties!.retry).includes("self == oldSelf"), "retry may change");
  assert.ok(rules(spec).some((r) => r.includes("globalBatchTokens %")));
  assert.equal(spec.properties!.training!.properties!.optimizer!.properties!.beta2!.default, 0.95);
  assert.deepEqual(spec.properties!.training!.properties!.precision!.enum, ["fp32", "bf16"]);
  for (const info of kinds) {
    const crd = crdManifest(info) as {
      spec: {
        names: { categories: string[]; shortNames: string[] };
        versions: { subresources: unknown; additionalPrinterColumns: { name: string }[] }[];
      };
    };
    assert.deepEqual(crd.spec.names.categories, ["herd"]);
    assert.ok(crd.spec.names.shortNames.length > 0);
    assert.deepEqual(crd.spec.versions[0]!.subresources, { status: {} });
  }
  const columns = (k: "TrainingJob" | "EvalJob" | "EvalSweep") =>
    kindInfo(k).printerColumns.map((c) => c.name);
  for (const c of ["Phase", "Step", "Loss", "Preemptions", "Age"])
    assert.ok(columns("TrainingJob").includes(c), c);
  for (const c of ["Last Run", "Next Run"]) assert.ok(columns("EvalSweep").includes(c), c);
});
