/** Loading and error lines, the same in every view: every API failure is shown where the data was needed. */
export function Loading({ what }: { what: string }) {
  return <div className="loading" role="status">Loading {what}…</div>;
}

export function ErrorBox({ error, what }: { error: string | null; what: string }) {
  return error ? <div className="error" role="alert">Could not load {what}: {error}</div> : null;
}
