/** Flow diagram (SVG): the model's path embedding → blocks → final norm → logits (top row, click a
 * block to open it) and the chosen block's data path (attention then FFN, with the residual adds),
 * from /api/flows; node fill and edge width follow the metric's intensity at the current step. */
import type { FlowsOut, GridCell, GridOut } from "../api/client";
import { blockFlow } from "../data/flow";
import { fmt, shortLayer } from "../data/format";
import { blockLayers, isBlock, type SpecialLayers } from "../data/layers";

interface Props {
  flows: FlowsOut;
  grid: GridOut; // depth 4 grid at the current step
  special: SpecialLayers; // from the API's model profile
  layer: number;
  onLayer: (layer: number) => void;
  onSelect: (cell: GridCell) => void;
}

const ALIASES: Record<string, string[]> = {
  ffn_act: ["ffn_act", "ffn_swiglu", "ffn_geglu", "ffn_gelu", "ffn_silu"],
  ffn_inp: ["ffn_inp", "sa_out"],
  embd: ["embd", "inp_scaled"],
};

export function cellFor(grid: GridOut, layer: number, type: string): GridCell | undefined {
  for (const t of ALIASES[type] ?? [type]) {
    const c = grid.cells.find((cell) => cell.layer === layer && cell.type === t && cell.value !== null) ??
      grid.cells.find((cell) => cell.layer === layer && cell.type === t);
    if (c) return c;
  }
  return undefined;
}

function Node({ x, y, w, label, cell, color, onClick, testType, layer }: {
  x: number; y: number; w: number; label: string; cell?: GridCell; color: string; onClick?: () => void;
  testType: string; layer: number;
}) {
  const t = cell?.intensity ?? null;
  return (
    <g
      className="flow-node"
      data-type={testType}
      data-layer={layer}
      data-value={cell?.value === null || cell?.value === undefined ? "null" : String(cell.value)}
      transform={`translate(${x},${y})`}
      onClick={onClick}
      style={{ cursor: onClick ? "pointer" : "default" }}
    >
      <rect width={w} height={34} rx={6} fill={color} fillOpacity={t === null ? 0.08 : 0.2 + 0.8 * t} stroke={color} strokeWidth={1.5} />
      <text x={w / 2} y={14} textAnchor="middle" fontSize={11} fill="#f8fafc">{label}</text>
      <text x={w / 2} y={28} textAnchor="middle" fontSize={10} fill="#e2e8f0" className="flow-value">
        {cell ? fmt(cell.value) : "not captured"}
      </text>
      <title>{cell ? `${cell.name}: ${fmt(cell.value)}` : `${label}: no such tensor in this capture`}</title>
    </g>
  );
}

export function FlowDiagram({ flows, grid, special, layer, onLayer, onSelect }: Props) {
  const colors = flows.colors;
  const blocks = blockLayers(grid.layers, special);
  // Overview row: the whole model.
  const overview: { layer: number; type: string; label: string }[] = [
    { layer: special.embedding, type: "embd", label: "embedding" },
    ...blocks.map((l) => ({ layer: l, type: "l_out", label: shortLayer(l, special) })),
    { layer: special.final_norm, type: "result_norm", label: "final norm" },
    { layer: special.output, type: "result_output", label: "logits" },
  ];
  const ow = Math.max(46, Math.min(90, Math.floor(1000 / overview.length) - 8));
  const { nodes, edges } = blockFlow(flows.flows);
  const cols = Math.max(...nodes.map((n) => n.col)) + 1;
  const colW = 118;
  const pos = new Map(nodes.map((n) => [n.id, { x: 10 + n.col * colW, y: 20 + n.row * 52 }]));
  const height = 40 + Math.max(...nodes.map((n) => n.row + 1)) * 52;
  const nodeLayer = (id: string) => (id === "l_out.prev" ? (blocks[blocks.indexOf(layer) - 1] ?? special.embedding) : layer);
  const nodeCell = (id: string) =>
    id === "l_out.prev" && blocks.indexOf(layer) === 0 ? cellFor(grid, special.embedding, "embd") : cellFor(grid, nodeLayer(id), id.replace(/\.prev$/, ""));
  return (
    <div className="flow" data-testid="flow-diagram" data-capture-id={grid.capture_id} data-step={grid.step}>
      <svg width={overview.length * (ow + 14) + 10} height={56} className="flow-overview">
        {overview.map((o, i) => {
          const cell = cellFor(grid, o.layer, o.type);
          const block = isBlock(o.layer, special);
          return (
            <g key={`${o.layer}`}>
              {i > 0 && (
                <line x1={10 + i * (ow + 14) - 14} y1={27} x2={10 + i * (ow + 14)} y2={27} stroke={colors.layer_flow ?? "#fff"}
                  strokeWidth={1 + 3 * (cell?.intensity ?? 0)} />
              )}
              <g className={block && o.layer === layer ? "flow-current" : undefined}>
                <Node x={10 + i * (ow + 14)} y={10} w={ow} label={o.label} cell={cell} layer={o.layer} testType={`overview:${o.type}`}
                  color={block && o.layer === layer ? "#ffffff" : cell ? categoryStroke(cell) : "#64748b"}
                  onClick={block ? () => onLayer(o.layer) : cell ? () => onSelect(cell) : undefined} />
              </g>
            </g>
          );
        })}
      </svg>
      <div className="flow-layer-pick">
        <label>
          Block{" "}
          <select aria-label="flow layer" value={layer} onChange={(e) => onLayer(Number(e.target.value))}>
            {blocks.map((l) => <option key={l} value={l}>{l}</option>)}
          </select>
        </label>
        <span className="muted"> attention (green) then feed-forward (orange); the straight lines are the residual adds</span>
      </div>
      <svg width={cols * colW + 20} height={height} className="flow-block" data-testid="flow-block" data-layer={layer}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#94a3b8" />
          </marker>
        </defs>
        {edges.map((e, i) => {
          const a = pos.get(e.from)!;
          const b = pos.get(e.to)!;
          const t = nodeCell(e.to)?.intensity ?? 0;
          return (
            <path key={i} d={`M ${a.x + 100} ${a.y + 17} C ${a.x + 110} ${a.y + 17}, ${b.x - 10} ${b.y + 17}, ${b.x} ${b.y + 17}`}
              fill="none" stroke={colors[e.kind] ?? "#94a3b8"} strokeOpacity={0.35 + 0.65 * t} strokeWidth={1 + 3 * t} markerEnd="url(#arrow)" />
          );
        })}
        {nodes.map((n) => {
          const p = pos.get(n.id)!;
          const cell = nodeCell(n.id);
          const label = n.id === "l_out.prev" ? (blocks.indexOf(layer) === 0 ? "embd (input)" : "l_out (prev)") : n.id;
          return (
            <Node key={n.id} x={p.x} y={p.y} w={100} label={label} cell={cell} layer={nodeLayer(n.id)} testType={n.id}
              color={cell ? categoryStroke(cell) : "#475569"} onClick={cell ? () => onSelect(cell) : undefined} />
          );
        })}
      </svg>
    </div>
  );
}

function categoryStroke(cell: GridCell): string {
  return cell.color;
}
