// The sampler's noise, seeded: the same values under node (run.js) and in the browser (main.js).
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.zooNoise = factory();
})(this, function () {
  "use strict";

  // mulberry32: a 32-bit PRNG (integer arithmetic only, period 2^32), uniform in (0, 1).
  function mulberry32(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
  }

  // count values: U(-1, 1) for law "uniform", else N(0, 1) by Box–Muller (both values of each pair).
  function noise(count, law, seed) {
    const uniform = mulberry32(seed), values = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      if (law === "uniform") { values[i] = 2 * uniform() - 1; continue; }
      const radius = Math.sqrt(-2 * Math.log(uniform())), angle = 2 * Math.PI * uniform();
      values[i] = radius * Math.cos(angle);
      if (i + 1 < count) values[++i] = radius * Math.sin(angle);
    }
    return values;
  }

  return { mulberry32, noise };
});
