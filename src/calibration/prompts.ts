// Built-in calibration prompts: plain English openings in the register of the bundled family's
// corpus (speeches, essays, news). Users calibrate on their own prompts with --prompts FILE.
export const BUILTIN_CALIBRATION_PROMPTS: readonly string[] = [
  "The state of the Union is",
  "In the early years of the century, the people of this country",
  "We must never forget that the strength of our nation",
  "The committee met on Tuesday to discuss the new budget, and",
  "She walked into the room and looked at the letter on the table.",
  "It is the duty of every citizen to",
  "The history of the railroad in America begins with",
  "When the war ended, the government turned its attention to",
];
