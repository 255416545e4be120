/**
 * The chat template. kd models are plain language models with no special tokens, so a conversation
 * is rendered as text, one line per message, and the model continues after "assistant: ":
 *
 *   system: You are terse.\n
 *   user: Hi\n
 *   assistant: 
 *
 * ("developer" messages render as "system"). Generation stops when the model starts the next user
 * turn, i.e. at "\nuser:" (cut from the answer, like any stop string), or at the token limit. A
 * student distilled from chat transcripts rendered this way learns both the turns and where to stop.
 */
import type { ChatMessage } from './validate.js';

/** Where the assistant's turn ends. */
export const CHAT_STOP = '\nuser:';

export function renderChat(messages: ChatMessage[]): string {
  let s = '';
  for (const m of messages) s += `${m.role === 'developer' ? 'system' : m.role}: ${m.content}\n`;
  return s + 'assistant: ';
}
