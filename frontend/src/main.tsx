import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { ViewerProvider } from "./state/store";
import "./styles.css";

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ViewerProvider>
      <App />
    </ViewerProvider>
  </StrictMode>,
);
