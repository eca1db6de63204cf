// The benchmark's fixed prompt set: openings in the register of the bundled family's training text (speeches,
// essays, news), deliberately different from the calibration prompts (src/calibration/prompts.ts) so that the
// acceptance the planner calibrated on is tested on text it has not seen. `--prompts N` takes the first N.
export const BENCH_PROMPTS: readonly string[] = [
  "Mr. Speaker, Mr. President, members of the Congress, my fellow citizens:",
  "The report of the Secretary of the Treasury shows that the revenues of the Government",
  "For the first time in many years, the farmers of the West",
  "Our relations with foreign nations continue to be",
  "The city council voted last night to approve a plan that would",
  "He had never seen the ocean before, and when the train came around the last hill",
  "Education is the foundation on which",
  "In the spring of that year the army moved south, and",
];
