// The chat task: how likely a model finds the assistant's replies of held-out conversations,
// each rendered with the model's chat template (workers/model/chat.ts) and scored given
// everything before it. Its perplexity is the fine-tuning loss on data the run never saw:
// an EvalJob before and after a fine-tuning job shows whether it learned or overfit.
import { Template } from "@huggingface/jinja";
import type { ChatTokenizer, Conversation } from "../model/chat.ts";
import { encodeConversation } from "../model/chat.ts";
import type { EvalModel, TaskOutcome } from "./tasks.ts";

/** The reply runs of a conversation: each learned run with the tokens before it. */
function replies(ids: number[], learn: number[]): { context: number[]; reply: number[] }[] {
  const out: { context: number[]; reply: number[] }[] = [];
  for (let i = 0; i < ids.length;) {
    if (!learn[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < ids.length && learn[j]) j++;
    out.push({ context: ids.slice(0, i), reply: ids.slice(i, j) });
    i = j;
  }
  return out;
}

/**
 * Perplexity of the replies: exp(Σ −log p(reply token | before) / reply tokens). A reply
 * longer than the model's context keeps its first maxSeqLen − 1 tokens; a context that does
 * not fit loses its oldest tokens (the engine's score()).
 */
export async function evalChat(
  m: EvalModel,
  conversations: Conversation[],
  chat: ChatTokenizer,
  progress?: (done: number) => void,
): Promise<TaskOutcome & { tokens: number; nll: number }> {
  let nll = 0,
    tokens = 0,
    done = 0;
  const template = new Template(chat.template); // parsed once for all conversations
  for (const c of conversations) {
    const x = await encodeConversation(c, chat, template);
    const requests = replies(x.ids, x.learn).map(({ context, reply }) => ({
      context: Int32Array.from(context.length > 0 ? context : [chat.tokenizer.bosId ?? 0]),
      continuation: Int32Array.from(reply.slice(0, m.maxSeqLen - 1)),
    }));
    const scored = await m.inference.score(requests);
    const own = scored.reduce((a, r) => a - r.logprob, 0);
    const count = scored.reduce((a, r) => a + r.tokens, 0);
    nll += own;
    tokens += count;
    progress?.(++done);
  }
  if (tokens === 0) throw new Error("the conversations have no assistant reply to score");
  return {
    examples: conversations.length,
    tokens,
    nll,
    metrics: [
      { name: "perplexity", value: Math.exp(nll / tokens) },
      { name: "nll_per_token", value: nll / tokens },
    ],
  };
}
