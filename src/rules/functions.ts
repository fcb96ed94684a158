// The function registry: names, signatures and one-line docs. Typing rules live in
// typecheck.ts, runtime behaviour in values.ts (shared by compiler and interpreter).

export interface FunctionInfo {
  readonly signature: string;
  readonly doc: string;
}

export const FUNCTIONS: Readonly<Record<string, FunctionInfo>> = {
  lower: { signature: "lower(String): String", doc: "ASCII letters to lower case" },
  upper: { signature: "upper(String): String", doc: "ASCII letters to upper case" },
  len: { signature: "len(String | Array): Int", doc: "length of a String in UTF-8 bytes, or number of elements of an Array" },
  starts_with: { signature: "starts_with(String, String): Bool", doc: "the first string starts with the second" },
  ends_with: { signature: "ends_with(String, String): Bool", doc: "the first string ends with the second" },
  concat: { signature: "concat(String, String, …): String | concat(Array<T>, Array<T>, …): Array<T>", doc: "joins strings, or arrays of one element type" },
  url_decode: { signature: 'url_decode(String[, "r" | "u" | "ru"]): String', doc: "percent-decodes (+ is a space); r: repeat until stable; u: also %uXXXX" },
  any: { signature: "any(Array<Bool>): Bool", doc: "some element is true, e.g. any(http.request.headers[\"x-a\"][*] eq \"1\")" },
  all: { signature: "all(Array<Bool>): Bool", doc: "every element is true (false when the array is missing)" },
};
