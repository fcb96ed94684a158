// Structured JSON logs (pino). Redaction is defence in depth: nothing in certgate logs keys,
// but a config object logged by mistake must not leak one.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(opts: { level?: string; destination?: number | string } = {}): Logger {
  const level = opts.level ?? process.env.CERTGATE_LOG_LEVEL ?? "info";
  return pino(
    {
      level,
      base: { service: "certgate" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ["*.key", "*.keyPem", "key", "keyPem", "*.private_key", "*.token", "token"], censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: opts.destination ?? 1, sync: false }),
  );
}
