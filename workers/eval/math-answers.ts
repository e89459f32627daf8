// MATH's answers: the content of the last \boxed{…} (or \fbox{…}) of a solution, and the
// string normalisation of Hendrycks et al.'s is_equiv (their strip_string), so that
// "\dfrac{1}{2}", "\frac12" and "1/2" compare equal, as do "10^\circ" and "10".

/** The content of the last \boxed{…} or \fbox{…}, braces matched; undefined when there is none. */
export function lastBoxed(text: string): string | undefined {
  const at = Math.max(text.lastIndexOf("\\boxed"), text.lastIndexOf("\\fbox"));
  if (at < 0) return undefined;
  const open = text.indexOf("{", at);
  if (open < 0) {
    // "\boxed 5": the token after a space
    const m = /^\\boxed\s+([^\s$]+)/.exec(text.slice(at));
    return m?.[1];
  }
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  return undefined;
}

/** "\frac12" → "\frac{1}{2}", "\frac1{2}" → "\frac{1}{2}". */
function fixFracs(s: string): string {
  return s.replace(
    /\\frac(?:\s*)(\{[^{}]*\}|[0-9a-zA-Z])(?:\s*)(\{[^{}]*\}|[0-9a-zA-Z])/g,
    (_m, a: string, b: string) => {
      const wrap = (x: string) => (x.startsWith("{") ? x : `{${x}}`);
      return `\\frac${wrap(a)}${wrap(b)}`;
    },
  );
}

/** Hendrycks' strip_string, step by step. */
export function normalizeMath(answer: string): string {
  let s = answer.replace(/\n/g, "").replace(/\\!/g, "").replace(/\\\\/g, "\\");
  s = s.replace(/tfrac/g, "frac").replace(/dfrac/g, "frac");
  s = s.replace(/\\left/g, "").replace(/\\right/g, "");
  s = s.replace(/\^\{\\circ\}/g, "").replace(/\^\\circ/g, "");
  s = s.replace(/\\\$/g, "").replace(/\$/g, "");
  s = s.replace(/\\text\{\s*([^{}]*)\}/g, "$1").replace(/\\mbox\{\s*([^{}]*)\}/g, "$1");
  s = s.replace(/\\%/g, "").replace(/%/g, "");
  s = s.replace(/ \./g, " 0.").replace(/\{\./g, "{0.");
  if (s.startsWith(".")) s = "0" + s;
  // "x = 5" → "5" when the left side is short
  const eq = s.split("=");
  if (eq.length === 2 && eq[0]!.trim().length <= 2) s = eq[1]!;
  s = s.replace(/\\sqrt(\w)/g, "\\sqrt{$1}");
  s = s.replace(/\s+/g, "");
  s = fixFracs(s);
  if (s === "0.5") s = "\\frac{1}{2}";
  // "a/b" of two integers → "\frac{a}{b}"
  const slash = /^(-?\d+)\/(\d+)$/.exec(s);
  if (slash) s = `\\frac{${slash[1]}}{${slash[2]}}`;
  return s.replace(/\.$/, "");
}
