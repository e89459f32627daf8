// Cron expressions and durations as the API accepts them. The cron grammar is a regular
// expression built from each field's range, so the API server (OpenAPI `pattern`, RE2) and
// zod (JavaScript RegExp) reject the same strings, "61 * * * *" included.
import { z } from "zod";

const monthNames = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC";
const dayNames = "SUN|MON|TUE|WED|THU|FRI|SAT";

/** The values one cron field allows, as a regular expression (no anchors). */
const cronFieldValues = {
  minute: "[1-5]?[0-9]",
  hour: "1?[0-9]|2[0-3]",
  dayOfMonth: "[1-9]|[12][0-9]|3[01]",
  month: `[1-9]|1[0-2]|${monthNames}`,
  dayOfWeek: `[0-7]|${dayNames}`,
};

/** A field: comma-separated items, each `*` or `a` or `a-b`, optionally `/step`. */
function cronField(values: string): string {
  const value = `(?:${values})`;
  const item = `(?:\\*|${value}(?:-${value})?)(?:/[1-9][0-9]*)?`;
  return `${item}(?:,${item})*`;
}

export const cronPattern = new RegExp(
  "^(?:@(?:yearly|annually|monthly|weekly|daily|hourly)|" +
    Object.values(cronFieldValues).map(cronField).join(" +") +
    ")$",
);

export const cron = z
  .string()
  .max(256)
  .regex(
    cronPattern,
    "must be a five-field cron expression (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly",
  )
  .describe(
    "Standard five-field cron expression in UTC, e.g. '0 */6 * * *', or @hourly, @daily, @weekly, @monthly, @yearly. Month and day names are upper case.",
  );

export const durationPattern = /^(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?$/;

/** Seconds in a duration such as 1h30m or 45s; NaN when it does not parse. */
export function durationSeconds(text: string): number {
  const m = /^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$/.exec(text);
  if (!m || text === "") return NaN;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

export const duration = z
  .string()
  .max(64)
  .regex(durationPattern, "must be a duration such as 90s, 30m or 1h30m")
  .describe("A duration such as 90s, 30m or 1h30m.");
