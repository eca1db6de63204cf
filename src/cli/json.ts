// The CLI's JSON is snake_case throughout (as llama-server and the OpenAI API write theirs); the TypeScript API is
// camelCase. This is the one place that converts, at the edge, just before printing.

/** "predictedMsPerToken" -> "predicted_ms_per_token"; keys already in snake_case are unchanged. */
export function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

/** A deep copy of a JSON-able value with every object key in snake_case (class instances via their toJSON). */
export function toSnakeCaseJson(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const plain =
    typeof (value as { toJSON?: unknown }).toJSON === "function" ? (value as { toJSON(): unknown }).toJSON() : value;
  if (plain === null || typeof plain !== "object") return plain;
  if (Array.isArray(plain) || ArrayBuffer.isView(plain))
    return Array.from(plain as ArrayLike<unknown>, toSnakeCaseJson);
  return Object.fromEntries(Object.entries(plain).map(([k, v]) => [snakeCase(k), toSnakeCaseJson(v)]));
}
