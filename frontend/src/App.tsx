/** The viewer's layout: the top bar, the sidebar and the views. Each view fetches its own data
 * (api/queries) and reads the selection from state/; the only thing here is which capture opens
 * first and what to show before one is loaded. */
import { useEffect, type ReactNode } from "react";
import { useCapture, useStartup } from "./api/queries";
import { startupPath } from "./state/selection";
import { LiveProvider } from "./state/live";
import { useViewer } from "./state/store";
import { CapturesPanel, EmptyState } from "./views/CapturesPanel";
import { ComparePanel } from "./views/ComparePanel";
import { Toolbar } from "./views/Controls";
import { FlowPanel } from "./views/FlowPanel";
import { GridPanel } from "./views/GridPanel";
import { HeatMapsPanel } from "./views/HeatMapsPanel";
import { Info } from "./views/InfoPanel";
import { LiveBadge, LivePanel } from "./views/LivePanel";
import { LoadProgress } from "./views/LoadProgress";
import { LogitLensPanel } from "./views/LogitLensPanel";
import { RunPanel } from "./views/RunPanel";
import { Loading } from "./views/Status";
import { TimelinePanel } from "./views/TimelinePanel";

export function App() {
  const { state, dispatch } = useViewer();
  const startup = useStartup(startupPath);
  const capture = useCapture(state.capturePath).data;
  const first = startup.data?.path ?? null;
  useEffect(() => {
    if (first !== null) dispatch({ type: "loaded", path: first });
  }, [first, dispatch]);

  if (startup.isPending) return <Shell><Loading what="captures" /></Shell>;
  if (startup.isError) return <Shell><div className="error" role="alert">Cannot reach the Spectra Vis API: {startup.error.message}</div></Shell>;
  const empty = startup.data.path === null ? startup.data.dataDir : null;

  return (
    <LiveProvider>
      <Shell header={<>{capture && <Toolbar />}<LiveBadge /><LoadProgress /></>}>
        <aside className="sidebar">
          <CapturesPanel />
          <RunPanel />
          <Info />
        </aside>
        <main className="main">
          <LivePanel />
          {empty !== null && !capture && <EmptyState dataDir={empty} />}
          {capture && (
            <>
              <GridPanel />
              <TimelinePanel />
              <HeatMapsPanel />
              <LogitLensPanel />
              <ComparePanel />
              <FlowPanel />
            </>
          )}
        </main>
      </Shell>
    </LiveProvider>
  );
}

function Shell({ children, header }: { children: ReactNode; header?: ReactNode }) {
  return (
    <div className="app">
      <header className="topbar">
        <h1>Spectra Vis</h1>
        {header}
      </header>
      <div className="body">{children}</div>
    </div>
  );
}
