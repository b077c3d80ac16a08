/** The token timeline panel: the Token Lens over the trial's token strip and step scrubber, and the
 * next token the model chose at the cursor's step. */
import { useCallback } from "react";
import { useColors, useStep, useTrial } from "../api/queries";
import { fmt } from "../data/format";
import { useCurrent } from "./current";
import { ErrorBox, Loading } from "./Status";
import { TokenLens } from "./TokenLens";
import { TokenTimeline } from "./TokenTimeline";

export function TimelinePanel() {
  const { state, dispatch, capture, cid } = useCurrent();
  const colors = useColors();
  const trial = useTrial(cid, state.trialId);
  const stepData = useStep(cid, state.trialId, state.step);
  const onStep = useCallback((step: number) => dispatch({ type: "step", step }), [dispatch]);
  const next = trial.data?.steps[state.step]?.next_token;
  return (
    <section className="panel view-timeline" id="view-timeline" data-testid="view-timeline">
      <h2>Token timeline</h2>
      <ErrorBox error={trial.error} what="the trial" />
      {trial.loading && !trial.data && <Loading what="the trial" />}
      {trial.data && cid && capture && (
        <TokenLens captureId={cid} trial={trial.data} attentionLayers={capture.attention_layers} colors={colors.data} step={state.step} token={state.token} pinned={state.pinnedToken}
          onPin={(pos) => dispatch({ type: "pin", pos })}
          timeline={(extra) => (
            <TokenTimeline trial={trial.data!} step={state.step} token={state.token} onStep={onStep}
              onToken={(pos, step) => dispatch({ type: "token", pos, step })} {...extra} />
          )} />
      )}
      {stepData.data?.logits && trial.data && (
        <div className="muted small" data-testid="next-token">
          next token at this step: id {next?.id ?? "—"} (logit {fmt(next?.logit ?? null)})
        </div>
      )}
    </section>
  );
}
