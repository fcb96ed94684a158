// Value types of the rules language. Objects rather than strings so Array/Map can nest.

export type Type =
  | { readonly k: "Bool" }
  | { readonly k: "Int" }
  | { readonly k: "String" }
  | { readonly k: "IP" }
  | { readonly k: "Array"; readonly elem: Type }
  | { readonly k: "Map"; readonly elem: Type };

export const BOOL: Type = { k: "Bool" };
export const INT: Type = { k: "Int" };
export const STRING: Type = { k: "String" };
export const IP: Type = { k: "IP" };
export const arrayOf = (elem: Type): Type => ({ k: "Array", elem });
export const mapOf = (elem: Type): Type => ({ k: "Map", elem });

export function typeName(t: Type): string {
  return t.k === "Array" || t.k === "Map" ? `${t.k}<${typeName(t.elem)}>` : t.k;
}

export function sameType(a: Type, b: Type): boolean {
  if (a.k !== b.k) return false;
  if ((a.k === "Array" || a.k === "Map") && (b.k === "Array" || b.k === "Map")) return sameType(a.elem, b.elem);
  return true;
}
