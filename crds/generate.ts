// Generates the CRD manifests (crds/manifests/*.yaml) and the API reference (docs/api.md)
// from the zod schemas. zod's JSON Schema (draft 2020-12) becomes a structural OpenAPI v3
// schema as Kubernetes wants it: a type on every node, no $schema/const/propertyNames,
// boolean exclusive bounds, records as additionalProperties, CEL rules kept.
// Run: `npm run crds` or `herd crds generate`; `herd crds check` fails on drift.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { z } from "zod";
import { group, version } from "./common.ts";
import { kinds, type KindInfo } from "./kinds.ts";
import { celRules, type CelRule } from "./rules.ts";

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that herd's schemas use. */
export interface JSONSchemaProps {
  description?: string;
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps;
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-validations"?: CelRule[];
}

type JsonNode = Record<string, unknown>;

export class SchemaError extends Error {
  override name = "SchemaError";
}

const safeIntBounds = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);
const copiedKeys = [
  "description",
  "enum",
  "default",
  "pattern",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "x-kubernetes-validations",
] as const;

/**
 * Converts one zod JSON Schema node to a structural schema node. `where` names the node in
 * errors; `problems` collects what Kubernetes would reject or what leaves a field undocumented.
 */
function structural(node: JsonNode, where: string, problems: string[]): JSONSchemaProps {
  const out: JSONSchemaProps = {};
  for (const key of ["anyOf", "oneOf", "allOf", "$ref", "not"])
    if (key in node) problems.push(`${where}: ${key} is not structural; use a plain object`);
  const type = node.type;
  if (typeof type !== "string") problems.push(`${where}: no type`);
  else out.type = type as JSONSchemaProps["type"];
  for (const key of copiedKeys)
    if (node[key] !== undefined) Object.assign(out, { [key]: node[key] });
  if (node.const !== undefined) out.enum = [node.const];

  // Numeric bounds: drop zod's safe-integer range, turn draft-2020 exclusive numbers into
  // OpenAPI v3 booleans (for integers, the next integer is clearer).
  for (const [bound, exclusive, step] of [
    ["minimum", "exclusiveMinimum", 1],
    ["maximum", "exclusiveMaximum", -1],
  ] as const) {
    const inclusiveValue = node[bound];
    if (typeof inclusiveValue === "number" && !safeIntBounds.has(inclusiveValue))
      out[bound] = inclusiveValue;
    const exclusiveValue = node[exclusive];
    if (typeof exclusiveValue === "number") {
      if (type === "integer") out[bound] = exclusiveValue + step;
      else {
        out[bound] = exclusiveValue;
        out[exclusive] = true;
      }
    }
  }

  if (type === "object") {
    const properties = node.properties as Record<string, JsonNode> | undefined;
    if (properties) {
      out.properties = {};
      for (const [name, child] of Object.entries(properties)) {
        if (typeof child.description !== "string" || child.description === "")
          problems.push(`${where}.${name}: no description`);
        out.properties[name] = structural(child, `${where}.${name}`, problems);
      }
      const required = node.required as string[] | undefined;
      if (required?.length) out.required = required;
    }
    const extra = node.additionalProperties;
    if (extra && typeof extra === "object" && Object.keys(extra).length > 0)
      out.additionalProperties = structural(extra as JsonNode, `${where}[*]`, problems);
    else if (extra && typeof extra === "object" && !properties)
      out["x-kubernetes-preserve-unknown-fields"] = true;
  }
  if (type === "array") {
    if (!node.items) problems.push(`${where}: array without items`);
    else out.items = structural(node.items as JsonNode, `${where}[]`, problems);
  }
  return out;
}

/** The openAPIV3Schema of a kind: apiVersion/kind/metadata as Kubernetes has them, spec, status. */
export function openApiSchema(info: KindInfo): JSONSchemaProps {
  const json = z.toJSONSchema(info.schema, {
    io: "input",
    unrepresentable: "throw",
    // zod copies metadata from refined parents in an order that can drop a child's rules;
    // set each node's CEL list from the schema itself, after zod has merged everything.
    override: ({ zodSchema, jsonSchema }) => {
      const rules = celRules(zodSchema);
      if (rules.length) jsonSchema["x-kubernetes-validations"] = rules;
      else delete jsonSchema["x-kubernetes-validations"];
    },
  }) as JsonNode;
  const problems: string[] = [];
  const props = json.properties as Record<string, JsonNode>;
  const spec = structural(props.spec!, "spec", problems);
  const status = structural(props.status!, "status", problems);
  if (problems.length) throw new SchemaError(`${info.kind}:\n  ${problems.join("\n  ")}`);
  return {
    description: String(json.description ?? info.kind),
    type: "object",
    required: ["spec"],
    properties: {
      apiVersion: {
        description: "APIVersion defines the versioned schema of this representation of an object.",
        type: "string",
      },
      kind: {
        description:
          "Kind is a string value representing the REST resource this object represents.",
        type: "string",
      },
      metadata: { type: "object" },
      spec,
      status,
    },
  };
}

/** The CustomResourceDefinition of a kind, ready to apply. */
export function crdManifest(info: KindInfo): Record<string, unknown> {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${info.plural}.${group}` },
    spec: {
      group,
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.singular,
        shortNames: info.shortNames,
        categories: ["herd"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: openApiSchema(info) },
          subresources: { status: {} },
          additionalPrinterColumns: info.printerColumns,
        },
      ],
    },
  };
}

const header =
  "# Generated by crds/generate.ts from the zod schemas in crds/. Do not edit: run `npm run crds`.\n";

export function renderCrd(info: KindInfo): string {
  return header + stringify(crdManifest(info), { lineWidth: 0 });
}

function typeOf(s: JSONSchemaProps): string {
  if (s.type === "array") return `${s.items ? typeOf(s.items) : "?"}[]`;
  if (s.type === "object" && s.additionalProperties)
    return `map[string]${typeOf(s.additionalProperties)}`;
  return s.type ?? "?";
}

function constraintsOf(s: JSONSchemaProps): string[] {
  const c: string[] = [];
  if (s.enum) c.push(`one of ${s.enum.map((e) => `\`${String(e)}\``).join(", ")}`);
  if (s.minimum !== undefined) c.push(`${s.exclusiveMinimum ? ">" : "≥"} ${s.minimum}`);
  if (s.maximum !== undefined) c.push(`${s.exclusiveMaximum ? "<" : "≤"} ${s.maximum}`);
  if (s.minLength !== undefined) c.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) c.push(`length ≤ ${s.maxLength}`);
  if (s.minItems !== undefined) c.push(`items ≥ ${s.minItems}`);
  if (s.maxItems !== undefined) c.push(`items ≤ ${s.maxItems}`);
  if (s.pattern !== undefined && s.pattern.length <= 80) c.push(`pattern \`${s.pattern}\``);
  else if (s.pattern !== undefined) c.push("pattern (see the CRD)");
  for (const r of s["x-kubernetes-validations"] ?? []) c.push(`rule: ${r.message}`);
  return c;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

function fieldRows(s: JSONSchemaProps, prefix: string, required: boolean, rows: string[]): void {
  const def = s.default === undefined ? "" : `\`${JSON.stringify(s.default)}\``;
  rows.push(
    `| \`${prefix}\`${required ? " (required)" : ""} | ${cell(typeOf(s))} | ${cell(def)} | ${cell(
      [s.description ?? "", ...constraintsOf(s).map((c) => `_${c}_`)].filter(Boolean).join(" "),
    )} |`,
  );
  const child = s.type === "array" ? s.items : s;
  const childPrefix = s.type === "array" ? `${prefix}[]` : prefix;
  for (const [name, p] of Object.entries(child?.properties ?? {}))
    fieldRows(p, `${childPrefix}.${name}`, child?.required?.includes(name) ?? false, rows);
}

/** docs/api.md: one field table per kind, from the same structural schema the CRD carries. */
export function renderApiDoc(): string {
  const out = [
    "<!-- Generated by crds/generate.ts from the zod schemas in crds/. Do not edit: run `npm run crds`. -->",
    "# herd API reference (herd.dev/v1alpha1)",
    "",
    "Every kind is namespaced, in the `herd` category (`kubectl get herd`), with a status",
    "subresource written only by the object's workflow. `kubectl explain <kind>.spec` shows the",
    "same descriptions. Rules marked _rule_ are CEL rules the API server enforces; the same",
    "checks run as zod refinements in the operator, the workers and the CLI.",
    "",
  ];
  for (const info of kinds) {
    const schema = openApiSchema(info);
    out.push(`## ${info.kind}`, "", schema.description ?? "", "");
    out.push(
      `Plural \`${info.plural}\`, short name${info.shortNames.length > 1 ? "s" : ""} ${info.shortNames.map((n) => `\`${n}\``).join(", ")}. ` +
        `Printer columns: ${info.printerColumns.map((c) => c.name).join(", ")}.`,
      "",
    );
    for (const part of ["spec", "status"] as const) {
      out.push(`### ${info.kind}.${part}`, "", "| field | type | default | description |");
      out.push("|---|---|---|---|");
      const rows: string[] = [];
      fieldRows(schema.properties![part]!, part, false, rows);
      out.push(...rows.slice(1), "");
    }
  }
  return out.join("\n");
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Every generated file, relative to the repository root, with its content. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const info of kinds) files.set(`crds/manifests/${info.plural}.yaml`, renderCrd(info));
  // The Helm chart's copy (charts/herd/templates/crds.yaml renders it): a chart reads no file
  // outside its folder.
  for (const info of kinds)
    files.set(`charts/herd/files/crds/${info.plural}.yaml`, renderCrd(info));
  files.set("docs/api.md", renderApiDoc());
  return files;
}

/** Files whose committed content differs from what the schemas generate. */
export function drift(base = root): string[] {
  const stale: string[] = [];
  for (const [file, text] of generatedFiles()) {
    let current: string | undefined;
    try {
      current = readFileSync(path.join(base, file), "utf8");
    } catch {
      current = undefined;
    }
    if (current !== text) stale.push(file);
  }
  return stale;
}

export function writeGenerated(base = root): string[] {
  const written: string[] = [];
  for (const [file, text] of generatedFiles()) {
    mkdirSync(path.dirname(path.join(base, file)), { recursive: true });
    writeFileSync(path.join(base, file), text);
    written.push(file);
  }
  return written;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const file of writeGenerated()) console.log(`wrote ${file}`);
}
