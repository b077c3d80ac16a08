/** The saved views following a running run (issue 15 item 3), pure: where following last put the
 * viewer, and whether the user has moved it since (another capture, trial or step): then following
 * stops for that run. */

/** The viewer's place as following set it: the live capture's path, trial and step. */
export interface Placed {
  path: string;
  trial: number;
  step: number;
}

export interface ViewerPlace {
  capturePath: string | null;
  trialId: number;
  step: number;
}

/** True when the viewer is no longer where following last put it (null: it has put it nowhere yet). */
export function userMoved(placed: Placed | null, now: ViewerPlace): boolean {
  if (placed === null) return false;
  return now.capturePath !== placed.path || now.trialId !== placed.trial || now.step !== placed.step;
}

/** Steps received so far over every trial of the live state (what makes a refresh worth asking). */
export function stepsSoFar(trials: readonly { steps: readonly unknown[] }[]): number {
  return trials.reduce((n, t) => n + t.steps.length, 0);
}
