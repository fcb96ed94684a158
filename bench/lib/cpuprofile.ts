// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per file, the
// share of certgate's own code, node internals, dependencies and native/GC time, and the
// inclusive time of certgate's functions. Native work done below a JS frame (OpenSSL called
// from a JS binding) counts as that frame's self time; work started by libuv without a JS
// frame on the stack (TLS reads and most of the handshake) shows as "(program)".
import { readFileSync } from "node:fs";
import { relative } from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FnRow {
  fn: string;
  where: string;
  category: Category;
  selfMs: number;
  selfPct: number;
  /** The callers this function's self time came through, % of its self time. */
  callers: { fn: string; where: string; pct: number }[];
}
export type Category = "certgate" | "dependency" | "node" | "native/V8" | "gc" | "idle";

export interface ProfileSummary {
  file: string;
  durationS: number;
  busyMs: number; // all samples but (idle)
  byCategory: Record<Category, number>; // % of busy
  topSelf: FnRow[];
  topFiles: { where: string; category: Category; selfMs: number; selfPct: number }[];
  /** certgate functions by inclusive time (self + callees), % of busy. */
  topInclusive: { fn: string; where: string; totalPct: number }[];
}

function categorise(f: CallFrame, root: string): { category: Category; where: string } {
  const { url, functionName } = f;
  if (functionName === "(idle)") return { category: "idle", where: "" };
  if (functionName === "(garbage collector)") return { category: "gc", where: "" };
  if (!url) return { category: "native/V8", where: "" };
  if (url.startsWith("node:")) return { category: "node", where: url };
  const path = url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
  const rel = relative(root, path);
  const nm = rel.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = rel.slice(nm + "node_modules/".length);
    return { category: "dependency", where: rest };
  }
  if (!rel.startsWith("..")) return { category: "certgate", where: rel };
  return { category: "dependency", where: path };
}

/** `window`: only samples taken that many seconds after the profile started (e.g. skip startup and warm-up). */
export function summariseProfile(file: string, root: string, window: { fromS: number; toS: number } | null = null, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Each sample lasts until the next one (the last one: the mean interval).
  const n = p.samples.length;
  const mean = n ? (p.endTime - p.startTime) / n : 0;
  const selfUs = new Map<number, number>();
  let at = 0; // µs since the profile started
  let firstAt = Infinity;
  let lastAt = 0;
  for (let i = 0; i < n; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window.fromS * 1e6 || at > window.toS * 1e6)) continue;
    firstAt = Math.min(firstAt, at);
    lastAt = Math.max(lastAt, at);
    const d = i + 1 < n ? (p.timeDeltas[i + 1] ?? mean) : mean;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + Math.max(0, d));
  }
  const fns = new Map<string, FnRow>();
  const files = new Map<string, { where: string; category: Category; selfMs: number; selfPct: number }>();
  const cats: Record<Category, number> = { certgate: 0, dependency: 0, node: 0, "native/V8": 0, gc: 0, idle: 0 };
  const info = new Map<number, { key: string; category: Category; where: string; fn: string }>();
  for (const node of p.nodes) {
    const { category, where } = categorise(node.callFrame, root);
    const fn = node.callFrame.functionName || "(anonymous)";
    info.set(node.id, { key: `${fn}\0${where}:${node.callFrame.lineNumber + 1}`, category, where: where ? `${where}:${node.callFrame.lineNumber + 1}` : "", fn });
  }
  let busyUs = 0;
  const callerUs = new Map<string, { owner: string; fn: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const i = info.get(id)!;
    cats[i.category] += us;
    if (i.category === "idle") continue;
    busyUs += us;
    const row = fns.get(i.key) ?? { fn: i.fn, where: i.where, category: i.category, selfMs: 0, selfPct: 0, callers: [] };
    row.selfMs += us / 1000;
    fns.set(i.key, row);
    // The nearest caller that is not the same function.
    let up = parent.get(id);
    while (up !== undefined && info.get(up)!.key === i.key) up = parent.get(up);
    const ci = up === undefined ? undefined : info.get(up);
    const ck = `${i.key}\u0001${ci ? ci.key : "(root)"}`;
    const cr = callerUs.get(ck) ?? { owner: i.key, fn: ci?.fn ?? "(root)", where: ci?.where ?? "", us: 0 };
    cr.us += us;
    callerUs.set(ck, cr);
    const fileKey = i.where.replace(/:\d+$/, "") || i.fn;
    const f = files.get(fileKey) ?? { where: fileKey, category: i.category, selfMs: 0, selfPct: 0 };
    f.selfMs += us / 1000;
    files.set(fileKey, f);
  }
  // Inclusive time of certgate's own functions: every sample counts once for each distinct
  // certgate function on its stack.
  const incl = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    if (info.get(id)!.category === "idle") continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const i = info.get(cur)!;
      if (i.category !== "certgate" || seen.has(i.key)) continue;
      seen.add(i.key);
      const row = incl.get(i.key) ?? { fn: i.fn, where: i.where, us: 0 };
      row.us += us;
      incl.set(i.key, row);
    }
  }
  const pct = (us: number) => (busyUs ? (100 * us) / busyUs : 0);
  for (const [key, r] of fns) {
    r.selfPct = pct(r.selfMs * 1000);
    r.callers = [...callerUs.values()]
      .filter((c) => c.owner === key)
      .sort((a, b) => b.us - a.us)
      .slice(0, 3)
      .map((c) => ({ fn: c.fn, where: c.where, pct: (100 * c.us) / (r.selfMs * 1000) }));
  }
  for (const r of files.values()) r.selfPct = pct(r.selfMs * 1000);
  const byCategory = { ...cats };
  for (const k of Object.keys(byCategory) as Category[]) byCategory[k] = k === "idle" ? 0 : pct(cats[k]);
  return {
    file,
    durationS: lastAt > firstAt ? (lastAt - firstAt) / 1e6 : 0,
    busyMs: busyUs / 1000,
    byCategory,
    topSelf: [...fns.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top),
    topFiles: [...files.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top),
    topInclusive: [...incl.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 15)
      .map((r) => ({ fn: r.fn, where: r.where, totalPct: pct(r.us) })),
  };
}

export function profileMarkdown(title: string, s: ProfileSummary, rows = 20): string {
  const f = (x: number) => x.toFixed(1);
  const c = s.byCategory;
  const lines = [
    `#### ${title}`,
    "",
    `${f(s.busyMs / 1000)} s of busy samples over ${f(s.durationS)} s. Busy time by origin: ` +
      `native/V8 (incl. OpenSSL under libuv, "(program)") ${f(c["native/V8"])}%, node internals ${f(c.node)}%, ` +
      `dependencies ${f(c.dependency)}%, certgate ${f(c.certgate)}%, GC ${f(c.gc)}%.`,
    "",
    "| self % | self ms | function | where | called from (share of its self time) |",
    "|---:|---:|---|---|---|",
    ...s.topSelf
      .slice(0, rows)
      .map(
        (r) =>
          `| ${f(r.selfPct)} | ${f(r.selfMs)} | \`${r.fn}\` | ${r.where || r.category} | ${r.callers
            .slice(0, 2)
            .map((c) => `\`${c.fn}\` ${c.where} (${c.pct.toFixed(0)}%)`)
            .join("; ")} |`,
      ),
    "",
    "| self % by file | file |",
    "|---:|---|",
    ...s.topFiles.slice(0, 12).map((r) => `| ${f(r.selfPct)} | ${r.where} |`),
    "",
    "| inclusive % | certgate function | where |",
    "|---:|---|---|",
    ...s.topInclusive.slice(0, 10).map((r) => `| ${f(r.totalPct)} | \`${r.fn}\` | ${r.where} |`),
    "",
  ];
  return lines.join("\n");
}
