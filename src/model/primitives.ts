// The value types the model and the dialects' records are made of (ids, hostnames, PEM,
// timestamps): one definition, so a dialect's record accepts exactly what the model does.
import { z } from "zod";

export const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "ids are 1-128 of [A-Za-z0-9._-]");
export const hostname = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
        "a DNS name, optionally starting with '*.'",
      ),
  );
export const pem = z.string().min(1);
/** A file certgate reads on this node (a file-backed certificate, key, CA bundle or CRL): absolute, so it means the same whoever declared it. */
export const filePath = z
  .string()
  .max(4096)
  .regex(/^\/[^\0]*$/, "an absolute path (starting with /)");
export const ms = z.number().int().positive();

/** ISO 8601 timestamps every dialect shows (Fastly created_at/updated_at, Cloudflare created_at/modified_on...). */
export const stamp = z.string().optional();
