/** The 3D tensor grid: layers × tensor types, ONE InstancedMesh for every cell (setMatrixAt /
 * setColorAt), shared geometry and material, rendered on demand. Hover shows the tensor, click
 * selects it. Test hooks: `data-cell-count` on the wrapper and `window.__spectra`. */
import { Canvas, useThree, type ThreeEvent } from "@react-three/fiber";
import { Html, OrbitControls } from "@react-three/drei";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import * as THREE from "three";
import type { GridCell, GridOut } from "../api/client";
import { SPACING, gridCenter, layoutGrid } from "../data/gridLayout";
import { fmt, shortLayer } from "../data/format";

declare global {
  interface Window {
    __spectra?: {
      cellScreenPosition?: (i: number) => { x: number; y: number } | null;
      gridCells?: () => number;
    };
  }
}

interface Props {
  grid: GridOut;
  selected: number | null;
  onSelect: (cell: GridCell) => void;
  onHover?: (cell: GridCell | null) => void;
  stats?: { names: string[]; byId: Map<number, (number | null)[]> };
}

const tmp = new THREE.Object3D();
const tmpColor = new THREE.Color();

function Cells({ grid, selected, onSelect, onHover, setTip }: Props & { setTip: (t: Tip | null) => void }) {
  const mesh = useRef<THREE.InstancedMesh>(null);
  const layout = useMemo(() => layoutGrid(grid), [grid]);
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

function Axes({ grid }: { grid: GridOut }) {
  const [cx, cz] = gridCenter(grid);
  const style = { fontSize: 10, color: "#cbd5e1", whiteSpace: "nowrap" as const, pointerEvents: "none" as const };
  return (
    <group>
      {grid.layers.map((l, i) => (
        <Html key={`l${l}`} position={[-cx - 1.2, 0, i * SPACING - cz]} center style={style} className="axis-label layer-label">
          {shortLayer(l)}
        </Html>
      ))}
      {grid.types.map((t, i) => (
        <Html key={`t${t}`} position={[i * SPACING - cx, 0, cz + 1.3]} center style={{ ...style, transform: "rotate(-45deg)" }} className="axis-label type-label">
          {t}
        </Html>
      ))}
      <Html position={[-cx - 2.6, 0, -cz - 1]} center style={{ ...style, color: "#94a3b8" }}>layer ↓</Html>
      <Html position={[cx + 1.5, 0, cz + 1.3]} center style={{ ...style, color: "#94a3b8" }}>type →</Html>
    </group>
  );
}

interface Tip {
  cell: GridCell;
  x: number;
  y: number;
}

export function TensorGrid(props: Props) {
  const [tip, setTip] = useState<Tip | null>(null);
  const { grid } = props;
  const span = Math.max(grid.types.length, grid.layers.length) * SPACING;
  return (
    <div className="grid-canvas" data-cell-count={grid.cells.length} data-testid="tensor-grid" style={{ position: "relative" }}>
      <Canvas
        frameloop="demand"
        camera={{ position: [span * 0.55, span * 0.75, span * 0.9], fov: 45, near: 0.1, far: 1000 }}
        gl={{ antialias: true, preserveDrawingBuffer: true }}
        onPointerMissed={() => setTip(null)}
      >
        <color attach="background" args={["#0b1020"]} />
        <ambientLight intensity={0.6} />
        <directionalLight position={[10, 20, 10]} intensity={1.4} />
        <Cells {...props} setTip={setTip} />
        <Axes grid={grid} />
        <OrbitControls makeDefault enableDamping={false} />
      </Canvas>
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
