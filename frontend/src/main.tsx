import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClientProvider } from "@tanstack/react-query";
import { App } from "./App";
import { makeQueryClient } from "./api/queries";
import { ViewerProvider } from "./state/store";
import "./styles.css";

const queryClient = makeQueryClient();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <ViewerProvider>
        <App />
      </ViewerProvider>
    </QueryClientProvider>
  </StrictMode>,
);
