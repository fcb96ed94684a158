// Who may import whom (docs/architecture.md): each layer's forbidden arrows, as
// no-restricted-imports patterns on the import specifier. Specifiers are relative, so a
// layer's folder is matched as a path segment; "outside itself" is any `../` from a file at
// the top of that folder. test/architecture/layers.test.ts proves each rule fires.

const IO_MODULES = "^(node:)?(fs|fs/promises|net|http|https|http2|tls|dgram|child_process|sqlite)$|^pg(/|$)";

const layer = (folder, message, ...regexes) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: { "no-restricted-imports": ["error", { patterns: regexes.map((regex) => ({ regex, message })) }] },
});

export const layers = [
  layer("dataplane", "The data plane never imports the control plane or a dialect: they hand it a model (and injected functions).", "(^|/)(control|dialects)(/|$)"),
  layer("rules", "The rules engine imports nothing outside src/rules: the data plane implements its RequestInput.", "^\\.\\./"),
  // dialects/records.ts composes each dialect's record schemas (pure zod) into the model's `dialects` section.
  layer("model", "The model does no I/O and imports only the rules engine, pki and the dialects' record schemas (dialects/records.ts).", IO_MODULES, "^\\.\\./(?!(rules|pki)/|dialects/records\\.ts$)"),
  {
    // The record schemas the model composes stay as pure as the model.
    files: ["src/dialects/records.ts", "src/dialects/*/records.ts"],
    rules: { "no-restricted-imports": ["error", { patterns: [IO_MODULES, "(^|/)(control|dataplane)(/|$)"].map((regex) => ({ regex, message: "Dialect records are pure schemas: no I/O, no control plane, no data plane." })) }] },
  },
  layer("revocation", "Revocation does not import the data plane (nor the control plane or a dialect): it defines its own inputs and returns a verdict.", "(^|/)(dataplane|control|dialects)(/|$)"),
  layer("observability", "Observability imports nobody's internals: owners register readers with it.", "^\\.\\./"),
  layer("loadgen", "The load generator measures any TLS endpoint from outside: it imports neither the data plane nor the control plane (nor a dialect or the workers).", "(^|/)(dataplane|control|dialects|workers)(/|$)"),
  layer("workers", "Worker processes run the data plane; the control plane drives them through the Enforcer interface and commands.ts wires the two.", "(^|/)control(/|$)"),
];
