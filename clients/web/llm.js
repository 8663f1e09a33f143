// "Simulate LLM": a fixed paragraph handed out the way a language model streams its answer, a few
// tokens at a time every 30-60 ms, so the demo shows speech starting before the text is complete.

export const LLM_PARAGRAPH =
  "Sure, here is a quick overview. Streaming speech starts talking as soon as the first sentence " +
  "is complete, while the rest of the answer is still being written. Each sentence is synthesized " +
  "in the background and its audio joins the previous one without a gap. If you interrupt, the " +
  "server drops everything that was still queued. That keeps a voice assistant feeling responsive.";

// Word pieces the size of typical LLM tokens: a word and its leading space, long words split in two.
export function tokenize(text) {
  const tokens = [];
  for (const word of text.match(/\s*\S+/g) ?? []) {
    if (word.trim().length > 7) {
      const cut = Math.ceil(word.length / 2);
      tokens.push(word.slice(0, cut), word.slice(cut));
    } else {
      tokens.push(word);
    }
  }
  return tokens;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Calls send(piece) for each burst of 1-3 tokens until the paragraph is out or `signal` aborts.
// Resolves true when the whole paragraph was sent.
export async function streamTokens(text, send, signal) {
  const tokens = tokenize(text);
  let i = 0;
  while (i < tokens.length) {
    if (signal.aborted) return false;
    const burst = 1 + Math.floor(Math.random() * 3);
    send(tokens.slice(i, i + burst).join(""));
    i += burst;
    await sleep(30 + Math.random() * 30, signal);
  }
  return !signal.aborted;
}
