// Amazon EventBridge event patterns: the one routing language of petrel, on every target.
// Patterns apply to the CloudEvent as JSON: attributes at top level, payload under `data`.

export { compilePattern, type CompiledPattern } from './compile.js';
export { PatternError } from './errors.js';
