import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// vite.config.ts is bundled by Vite itself (not type-checked by `tsc`, which covers src/).
const page = (name: string) => fileURLToPath(new URL(`./${name}.html`, import.meta.url));

export default defineConfig({
  base: "./",
  clearScreen: false,
  server: { host: "127.0.0.1", port: 1420, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Tauri webviews load from the app bundle; nothing comes from the network.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: { setup: page("setup"), status: page("status"), chat: page("chat") },
    },
  },
});
