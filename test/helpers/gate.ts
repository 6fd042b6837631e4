// Holding a handler mid-request while another invocation runs: the test opens the gate once both are in.

/** A promise the test settles (`open`), and one the handler settles when it reaches the gate (`reached`). */
export function gate() {
  let open: () => void = () => undefined;
  let reached: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const arrived = new Promise<void>((resolve) => {
    reached = resolve;
  });
  return { open, opened, reached, arrived };
}
