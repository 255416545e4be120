/** `kd serve`: what later stages use (kd onpolicy samples the student through the same engine). */
export { Engine } from './engine.js';
export { generate } from './generate.js';
// kd serve's option spec and defaults
export { SERVE_OPTIONS } from './options.js';
