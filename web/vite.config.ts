// The dashboard's build: one hashed JS and one hashed CSS file under assets/, no inline script or
// style anywhere (the page runs under `Content-Security-Policy: default-src 'self'`).
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The preload polyfill would be inlined into index.html; every supported browser has it.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0, // no data: URLs (CSP img-src/font-src stay 'self')
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a running API (make run): the page at :5173, the API proxied.
    proxy: {
      "/api": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
