/** The 3D tensor grid: layers × tensor types, ONE InstancedMesh for every cell (setMatrixAt /
 * setColorAt), shared geometry and material, rendered on demand. Hover shows the tensor, click
 * selects it. Test hooks: `data-cell-count` on the wrapper and `window.__spectra`. */
import { Canvas, useFrame, useThree, type ThreeEvent } from "@react-three/fiber";
import { OrbitControls } from "@react-three/drei";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import * as THREE from "three";
import type { GridCell, GridOut } from "../api/client";
import { MAX_HEIGHT, SPACING, gridCenter, layoutGrid } from "../data/gridLayout";
import { fmt, shortLayer } from "../data/format";
import type { SpecialLayers } from "../data/layers";
import type { ValueScale } from "../data/scale";

declare global {
  interface Window {
    __spectra?: {
      cellScreenPosition?: (i: number) => { x: number; y: number } | null;
      gridCells?: () => number;
      camera?: () => number[];
    };
  }
}

interface Props {
  grid: GridOut;
  valueScale?: ValueScale; // height/glow by this scale (default: the API's linear intensity)
  selected: number | null;
  onSelect: (cell: GridCell) => void;
  onHover?: (cell: GridCell | null) => void;
  stats?: { names: string[]; byId: Map<number, (number | null)[]> };
  special: SpecialLayers | null; // layer labels: the API's special layers
}

const tmp = new THREE.Object3D();
const tmpColor = new THREE.Color();

function Cells({ grid, valueScale, selected, onSelect, onHover, setTip }: Props & { setTip: (t: Tip | null) => void }) {
  const mesh = useRef<THREE.InstancedMesh>(null);
  const layout = useMemo(() => layoutGrid(grid, valueScale), [grid, valueScale]);
  const { invalidate, camera, gl } = useThree();
  const geometry = useMemo(() => new THREE.BoxGeometry(0.8, 1, 0.8).translate(0, 0.5, 0), []);
  const material = useMemo(() => new THREE.MeshStandardMaterial({ roughness: 0.5, metalness: 0.1, toneMapped: false }), []);
  const count = grid.cells.length;

  useLayoutEffect(() => {
    const m = mesh.current;
    if (!m) return;
    layout.forEach((c, i) => {
      const sel = grid.cells[i].id === selected;
      tmp.position.set(c.x, 0, c.z);
      tmp.scale.set(sel ? 1.15 : 1, c.height, sel ? 1.15 : 1);
      tmp.updateMatrix();
      m.setMatrixAt(i, tmp.matrix);
      m.setColorAt(i, sel ? tmpColor.set("#ffffff") : tmpColor.setRGB(...c.color));
    });
    m.count = count;
    m.instanceMatrix.needsUpdate = true;
    if (m.instanceColor) m.instanceColor.needsUpdate = true;
    m.computeBoundingBox();
    m.computeBoundingSphere();
    invalidate();
  }, [layout, grid, selected, count, invalidate]);

  // Test hook: the screen position (page pixels) of the top of cell i.
  useEffect(() => {
    const hook = (window.__spectra ??= {});
    hook.gridCells = () => count;
    hook.camera = () => [...camera.position.toArray(), camera.getWorldDirection(new THREE.Vector3()).toArray()].flat();
    hook.cellScreenPosition = (i: number) => {
      const c = layout[i];
      if (!c) return null;
      const v = new THREE.Vector3(c.x, c.height * 0.6, c.z).project(camera);
      const r = gl.domElement.getBoundingClientRect();
      return { x: r.left + ((v.x + 1) / 2) * r.width, y: r.top + ((1 - v.y) / 2) * r.height };
    };
  }, [layout, camera, gl, count]);

  const cellAt = (e: ThreeEvent<PointerEvent | MouseEvent>) =>
    e.instanceId !== undefined ? grid.cells[e.instanceId] ?? null : null;

  return (
    <instancedMesh
      key={count}
      ref={mesh}
      args={[geometry, material, count]}
      onPointerMove={(e) => {
        e.stopPropagation();
        const cell = cellAt(e);
        setTip(cell ? { cell, x: e.nativeEvent.offsetX, y: e.nativeEvent.offsetY } : null);
        onHover?.(cell);
      }}
      onPointerOut={() => {
        setTip(null);
        onHover?.(null);
      }}
      onClick={(e) => {
        e.stopPropagation();
        const cell = cellAt(e);
        if (cell) onSelect(cell);
      }}
    />
  );
}

/** Frames the whole grid whenever its size changes (a new capture or depth), keeping any orbit otherwise. */
function FitCamera({ cols, rows }: { cols: number; rows: number }) {
  const { camera, size, controls, invalidate } = useThree();
  useEffect(() => {
    const cam = camera as THREE.PerspectiveCamera;
    const w = cols * SPACING + 12;
    const d = rows * SPACING + 4;
    const vfov = (cam.fov * Math.PI) / 180;
    const hfov = 2 * Math.atan(Math.tan(vfov / 2) * (size.width / Math.max(1, size.height)));
    const dist = Math.max(w / (2 * Math.tan(hfov / 2)), (d * 0.8 + MAX_HEIGHT) / (2 * Math.tan(vfov / 2))) * 0.95;
    const dir = new THREE.Vector3(0, 1.1, 1).normalize();
    cam.position.copy(dir.multiplyScalar(dist + d * 0.3));
    cam.lookAt(0, 0, 0);
    cam.updateProjectionMatrix();
    const c = controls as unknown as { target?: THREE.Vector3; update?: () => void } | null;
    if (c?.target) {
      c.target.set(0, 0, 0);
      c.update?.();
    }
    invalidate();
  }, [cols, rows, camera, size.width, size.height, controls, invalidate]);
  return null;
}

interface Anchor {
  key: string;
  text: string;
  cls: string;
  pos: [number, number, number];
  rotate: boolean;
}

/** Axis label anchors: one per layer row (left of the grid) and one per type column (in front). */
function axisAnchors(grid: GridOut, special: SpecialLayers | null): Anchor[] {
  const [cx, cz] = gridCenter(grid);
  return [
    ...grid.layers.map((l, i): Anchor => ({ key: `l${l}`, text: shortLayer(l, special), cls: "layer-label", pos: [-cx - 1.1, 0, i * SPACING - cz], rotate: false })),
    ...grid.types.map((t, i): Anchor => ({ key: `t${t}`, text: t, cls: "type-label", pos: [i * SPACING - cx, 0, cz + 1.0], rotate: true })),
  ];
}

/** Moves the DOM axis labels to their projected positions on every rendered frame (no React state). */
function LabelProjector({ anchors, refs }: { anchors: Anchor[]; refs: React.RefObject<(HTMLDivElement | null)[]> }) {
  const v = useMemo(() => new THREE.Vector3(), []);
  useFrame(({ camera, size }) => {
    anchors.forEach((a, i) => {
      const el = refs.current?.[i];
      if (!el) return;
      v.set(...a.pos).project(camera);
      const x = ((v.x + 1) / 2) * size.width;
      const y = ((1 - v.y) / 2) * size.height;
      el.style.transform = `translate(${x.toFixed(1)}px, ${y.toFixed(1)}px) translate(${a.rotate ? "-100%" : "-100%"}, -50%)${a.rotate ? " rotate(-40deg)" : ""}`;
      el.style.visibility = v.z > 1 ? "hidden" : "visible";
    });
  });
  return null;
}

interface Tip {
  cell: GridCell;
  x: number;
  y: number;
}

export function TensorGrid(props: Props) {
  const [tip, setTip] = useState<Tip | null>(null);
  const { grid } = props;
  const anchors = useMemo(() => axisAnchors(grid, props.special), [grid, props.special]);
  const labelRefs = useRef<(HTMLDivElement | null)[]>([]);
  return (
    <div className="grid-canvas" data-cell-count={grid.cells.length} data-scale={props.valueScale?.kind ?? "linear"} data-testid="tensor-grid" data-capture-id={grid.capture_id} data-step={grid.step} style={{ position: "relative" }}>
      <Canvas
        frameloop="demand"
        camera={{ position: [0, 10, 14], fov: 45, near: 0.1, far: 2000 }}
        gl={{ antialias: true, preserveDrawingBuffer: true }}
        onPointerMissed={() => setTip(null)}
      >
        <color attach="background" args={["#0b1020"]} />
        <ambientLight intensity={0.6} />
        <directionalLight position={[10, 20, 10]} intensity={1.4} />
        <Cells {...props} setTip={setTip} />
        <LabelProjector anchors={anchors} refs={labelRefs} />
        <FitCamera cols={grid.types.length} rows={grid.layers.length} />
        <OrbitControls makeDefault enableDamping={false} />
      </Canvas>
      <div className="axis-overlay" aria-hidden="true">
        {anchors.map((a, i) => (
          <div key={a.key} ref={(el) => { labelRefs.current[i] = el; }} className={`axis-label ${a.cls}`}
            style={{ transformOrigin: "100% 50%" }}>
            {a.text}
          </div>
        ))}
      </div>
      {tip && (
        <div className="tooltip" role="tooltip" data-testid="grid-tooltip" style={{ left: tip.x + 14, top: tip.y + 14 }}>
          <div className="tooltip-name" data-testid="grid-tooltip-name">{tip.cell.name}</div>
          <div>layer {tip.cell.layer} · {tip.cell.type} · {tip.cell.category}</div>
          <div>op {tip.cell.op} · shape [{tip.cell.shape.join(", ")}]</div>
          <div>
            {grid.metric}: <b data-testid="grid-tooltip-value">{fmt(tip.cell.value)}</b>
            {tip.cell.value === null && " (not read)"}
          </div>
          {props.stats?.byId.get(tip.cell.id) && (
            <div className="tooltip-stats">
              {props.stats.names.map((n, i) => (
                <span key={n}>{n} {fmt(props.stats!.byId.get(tip.cell.id)![i] ?? null)}</span>
              ))}
            </div>
          )}
        </div>
      )}
    </div>
  );
}
