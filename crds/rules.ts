// Validation rules written once and enforced twice: as a zod refinement (operator, workers,
// CLI) and as a CEL rule in the generated CRD (the API server). Declaring both side by side
// keeps them from drifting; test/crds and test/api run the same bad manifests through each.
import { globalRegistry, type z } from "zod";

/** One x-kubernetes-validations entry, as the API server reads it. */
export interface CelRule {
  rule: string;
  message: string;
  /** JSONPath of the field the error names, relative to the schema the rule sits on. */
  fieldPath?: string;
  reason?:
    "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueDuplicate";
}

/** A rule with both implementations: `check` in TypeScript, `rule` in CEL. */
export interface Rule<T> extends CelRule {
  check: (value: T) => boolean;
}

const celKey = "x-kubernetes-validations";

/**
 * The rules on a node, looking through optional/default wrappers: the JSON Schema of a
 * wrapper merges its metadata over the wrapped schema's, so a wrapper's list must repeat
 * the inner rules or it would hide them.
 */
function celRulesOf(schema: z.core.$ZodType): CelRule[] {
  const meta = globalRegistry.get(schema) as Record<string, unknown> | undefined;
  const own = meta?.[celKey] as CelRule[] | undefined;
  if (own) return own;
  const inner = (schema._zod.def as { innerType?: z.core.$ZodType }).innerType;
  return inner ? celRulesOf(inner) : [];
}

function withCel<S extends z.ZodType>(schema: S, rules: CelRule[]): S {
  const meta = (globalRegistry.get(schema) ?? {}) as Record<string, unknown>;
  return schema.meta({ ...meta, [celKey]: [...celRulesOf(schema), ...rules] }) as S;
}

/** fieldPath ".training.steps" → zod issue path ["training", "steps"]. */
function issuePath(fieldPath: string | undefined): string[] {
  return fieldPath ? fieldPath.split(".").filter((p) => p !== "") : [];
}

/** Adds rules to a schema: each becomes a zod refinement and a CEL rule on the same node. */
export function validated<S extends z.ZodType>(schema: S, rules: Rule<z.output<S>>[]): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules)
      if (!r.check(value as z.output<S>))
        ctx.addIssue({ code: "custom", message: r.message, path: issuePath(r.fieldPath) });
  }) as unknown as S;
  return withCel(
    refined,
    rules.map(({ rule, message, fieldPath, reason }) => ({
      rule,
      message,
      ...(fieldPath ? { fieldPath } : {}),
      ...(reason ? { reason } : {}),
    })),
  );
}

/**
 * Marks a field immutable once the object exists. This is a transition rule (it compares
 * with the stored object), so only the API server can enforce it; the operator never needs
 * to, since it only reads objects the server accepted.
 */
export function immutable<S extends z.ZodType>(schema: S, field: string): S {
  return withCel(schema, [{ rule: "self == oldSelf", message: `${field} is immutable` }]);
}

/** The CEL rules attached to a schema node (for tests and docs). */
export function celRules(schema: z.core.$ZodType): CelRule[] {
  return celRulesOf(schema);
}
