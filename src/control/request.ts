// Request bodies of the admin API, parsed with zod as the model is: each dialect declares its
// bodies as schemas (src/dialects/<name>/schemas.ts) and parseRequest turns the first problem
// into the admin API's 400, naming the field as the dialects always have ("name is required",
// "deploy must be a boolean", "colour is not a known field (known: ...)").
import { z } from "zod";
import { formatPath } from "../model/schema.ts";
import { ApiError } from "./apierrors.ts";

/** null reads as absent, as every dialect has always taken it (`{"name": null}` = no name). */
const absent = (v: unknown): unknown => v ?? undefined;

/** A field that may be left out (or null). */
export const optional = <S extends z.ZodType>(s: S) => z.preprocess(absent, s.optional());
/** A field that must be given (null counts as not given). */
export const required = <S extends z.ZodType>(s: S) => z.preprocess(absent, s);

const TYPE_NAMES: Record<string, string> = { string: "a string", boolean: "a boolean", number: "a number", int: "an integer", array: "an array", object: "an object" };

type Issue = z.core.$ZodRawIssue;

/** certgate's wording of zod's issues; a schema's own message (`{ error: "..." }`) wins over it. */
function wording(iss: Issue): string | undefined {
  switch (iss.code) {
    case "invalid_type":
      return iss.input === undefined ? "is required" : `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}`;
    case "invalid_value": {
      const values = iss.values.map(String).join(", ");
      return iss.input === undefined ? `is required (one of ${values})` : `must be one of ${values}, got ${JSON.stringify(iss.input)}`;
    }
    case "too_big":
      return iss.origin === "string" ? `is longer than ${String(iss.maximum)} characters` : undefined;
    case "unrecognized_keys": {
      const shape = (iss.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
      return `is not a known field${shape ? ` (known: ${Object.keys(shape).join(", ")})` : ""}`;
    }
    default:
      return undefined;
  }
}

/**
 * `input` parsed by `schema`, or a 400 naming the first field at fault (`prefix`, then its path):
 * "<field> <message>", unless the message already names it or comes from a refinement.
 */
export function parseRequest<S extends z.ZodType>(schema: S, input: unknown, prefix = ""): z.output<S> {
  const r = schema.safeParse(input, { reportInput: true, error: wording });
  if (r.success) return r.data;
  const iss = r.error.issues[0]!;
  const path = iss.code === "unrecognized_keys" ? [...iss.path, iss.keys[0]!] : iss.path;
  const rest = formatPath(path);
  const pointer = prefix && rest ? `${prefix}${rest.startsWith("[") ? "" : "."}${rest}` : prefix || rest;
  if (!pointer) throw new ApiError("bad_request", `the body ${iss.message}`);
  // A refinement's message is written whole; other messages are said of the field.
  const message = iss.code === "custom" || iss.message.startsWith(pointer) ? iss.message : `${pointer} ${iss.message}`;
  throw new ApiError("bad_request", message, pointer);
}
