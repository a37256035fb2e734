"""The peer: the recipe a team writes first with llama-index, at its default settings.

`SimpleDirectoryReader` → `VectorStoreIndex.from_documents` over a `ChromaVectorStore`
(embedded PersistentClient), with the same bundled all-MiniLM-L6-v2 through
`HuggingFaceEmbedding` — default chunking (SentenceSplitter, 1,024 tokens, 200 overlap) and
default embedding batch (10). Nothing here is tuned: that is the point of the comparison.

    python eval/bench/peer.py ingest TREE DATA_DIR   # prints {"seconds", "documents", ...}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repo on sys.path; offline environment)

COLLECTION = "peer"


def model_path() -> str:
    from assistant.settings import load_settings

    return str(load_settings().model_path)


def embed_model() -> Any:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=model_path())


def ingest(tree: Path, data_dir: Path) -> dict[str, Any]:
    """Build the peer's index of `tree` in `data_dir`; time from reading to a built index."""
    import chromadb
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    embed = embed_model()  # model load is outside the timing, as for our CLI's figure
    client = chromadb.PersistentClient(path=str(data_dir))
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))
    started = time.perf_counter()
    # exclude_hidden=False only because the scratch dir is .cx-bench (a dot-folder).
    documents = SimpleDirectoryReader(str(tree), recursive=True, exclude_hidden=False).load_data()
    VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
    )
    seconds = time.perf_counter() - started
    collection = client.get_collection(COLLECTION)
    return {"seconds": round(seconds, 2), "documents": len(documents),
            "chunks": collection.count(), "tokens": embedded_tokens(collection, embed)}


def embedded_tokens(collection: Any, embed: Any) -> int:
    """Tokens the model saw: each stored node's embedding text, cut at the model's limit.

    Counted after the timing. llama-index embeds `get_content(MetadataMode.EMBED)` (the
    file name and path lines plus the text), and the model truncates it at max_seq_length.
    """
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    got = collection.get(include=["metadatas", "documents"])
    texts = [metadata_dict_to_node(m, text=d).get_content(MetadataMode.EMBED)
             for m, d in zip(got["metadatas"], got["documents"], strict=True)]
    model = embed._model
    ids = model.tokenizer(texts, truncation=False)["input_ids"]
    return sum(min(len(i), model.max_seq_length) for i in ids)


class PeerRetriever:
    """The peer's query path: `index.as_retriever(similarity_top_k=k).retrieve(question)`."""

    def __init__(self, data_dir: Path, k: int = 10, collection: str = COLLECTION) -> None:
        import chromadb
        from llama_index.core import VectorStoreIndex
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(path=str(data_dir))
        store = ChromaVectorStore(chroma_collection=client.get_collection(collection))
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model())
        self.retriever = index.as_retriever(similarity_top_k=k)

    def doc_ids(self, question: str) -> list[str]:
        """Retrieved documents, best first (a document's file name without `.md`)."""
        out: list[str] = []
        for hit in self.retriever.retrieve(question):
            name = str(hit.node.metadata.get("file_name") or hit.node.metadata.get("doc_id"))
            doc = name.removesuffix(".md")
            if doc not in out:
                out.append(doc)
        return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "ingest":
        sys.exit(__doc__)
    print(json.dumps(ingest(Path(sys.argv[2]), Path(sys.argv[3]))))
