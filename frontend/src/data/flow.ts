/** Flow diagram layout: the data path through one block, from /api/flows edges between tensor
 * types (`l_out.prev` is the block's input, `l_out` its output), placed in columns by their
 * longest distance from the input. Pure. */

export interface FlowNode {
  id: string; // type name, or "l_out.prev"
  type: string; // tensor type whose value the node shows
  col: number;
  row: number;
}
export interface FlowEdge {
  from: string;
  to: string;
  kind: string; // attention_flow, ffn_flow, layer_flow, output_flow
}

export function blockFlow(flows: Record<string, string[][]>): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const edges: FlowEdge[] = [];
  for (const kind of ["attention_flow", "ffn_flow"]) {
    for (const [from, to] of flows[kind] ?? []) edges.push({ from, to, kind });
  }
  const ids = new Set<string>();
  edges.forEach((e) => (ids.add(e.from), ids.add(e.to)));
  const depth = new Map<string, number>();
  const visit = (id: string, seen: Set<string>): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (seen.has(id)) return 0; // a cycle: should not happen
    seen.add(id);
    const preds = edges.filter((e) => e.to === id).map((e) => e.from);
    const d = preds.length ? Math.max(...preds.map((p) => visit(p, seen) + 1)) : 0;
    depth.set(id, d);
    return d;
  };
  ids.forEach((id) => visit(id, new Set()));
  const rowsUsed = new Map<number, number>();
  const nodes: FlowNode[] = [...ids]
    .sort((a, b) => depth.get(a)! - depth.get(b)!)
    .map((id) => {
      const col = depth.get(id)!;
      const row = rowsUsed.get(col) ?? 0;
      rowsUsed.set(col, row + 1);
      return { id, type: id.replace(/\.(prev|next)$/, ""), col, row };
    });
  return { nodes, edges };
}
