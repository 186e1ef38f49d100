/**
 * Glob matching for SCAN's MATCH, with the rules of Redis's pattern matcher:
 * `*` any run of bytes, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` (a reversed
 * range is swapped), and `\` to take the next byte literally. An unclosed `[`
 * class ends at the end of the pattern; a trailing `\` matches a backslash.
 * Both sides are latin1 strings, one code unit per byte. Written from scratch:
 * an iterative matcher that backtracks only to the last `*`, so it is linear in
 * practice and never recurses.
 */
const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const DASH = 0x2d;

/**
 * Does the element at `pattern[at]` match `code`? Returns the index just past
 * the element, negated and minus one when it does not match (so callers can
 * still tell where the element ended): result >= 0 is a match.
 */
function matchOne(pattern: string, at: number, code: number): number {
  const length = pattern.length;
  const head = pattern.charCodeAt(at);
  if (head === QUESTION) return at + 1;
  if (head === BACKSLASH && at + 1 < length) {
    return pattern.charCodeAt(at + 1) === code ? at + 2 : -(at + 2) - 1;
  }
  if (head !== OPEN) return head === code ? at + 1 : -(at + 1) - 1;

  let index = at + 1;
  const negate = index < length && pattern.charCodeAt(index) === CARET;
  if (negate) index++;
  let matched = false;
  while (index < length) {
    const c = pattern.charCodeAt(index);
    if (c === CLOSE) {
      index++;
      break;
    }
    if (c === BACKSLASH && index + 1 < length) {
      if (pattern.charCodeAt(index + 1) === code) matched = true;
      index += 2;
      continue;
    }
    if (index + 2 < length && pattern.charCodeAt(index + 1) === DASH) {
      let low = c;
      let high = pattern.charCodeAt(index + 2);
      if (low > high) [low, high] = [high, low];
      if (code >= low && code <= high) matched = true;
      index += 3;
      continue;
    }
    if (c === code) matched = true;
    index++;
  }
  if (negate) matched = !matched;
  return matched ? index : -index - 1;
}

export function globMatch(pattern: string, subject: string): boolean {
  let p = 0;
  let s = 0;
  // Where to resume after the last '*': the pattern just past it, and the subject position it absorbs up to.
  let starPattern = -1;
  let starSubject = 0;
  const patternLength = pattern.length;
  const subjectLength = subject.length;
  // Each subject position is retried at most once per star; bound the work anyway.
  let budget = (patternLength + 1) * (subjectLength + 1) + 16;
  while (budget-- > 0) {
    if (p < patternLength && pattern.charCodeAt(p) === STAR) {
      while (p < patternLength && pattern.charCodeAt(p) === STAR) p++;
      if (p === patternLength) return true;
      starPattern = p;
      starSubject = s;
      continue;
    }
    if (s === subjectLength) {
      // Only trailing stars may remain.
      while (p < patternLength && pattern.charCodeAt(p) === STAR) p++;
      return p === patternLength;
    }
    if (p < patternLength) {
      const next = matchOne(pattern, p, subject.charCodeAt(s));
      if (next >= 0) {
        p = next;
        s++;
        continue;
      }
    }
    if (starPattern < 0) return false;
    starSubject++;
    s = starSubject;
    p = starPattern;
  }
  return false;
}
