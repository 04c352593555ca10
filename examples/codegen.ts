// graphql-codegen's client preset over runql's schema and the documents in queries/: typed
// documents (FeedDocument, RunDetailDocument, …) and their result types, in examples/gql/.
//
//   make codegen   (npx graphql-codegen --config examples/codegen.ts)
//   npx tsc -p examples
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["queries/*.graphql"],
  generates: {
    "examples/gql/": {
      preset: "client",
      config: {
        // runql's DateTime is an ISO 8601 string (2025-01-01T00:00:00.000Z); JSON any value.
        scalars: { DateTime: "string", JSON: "unknown" },
        strictScalars: true,
        enumsAsTypes: true,
        useTypeImports: true,
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
