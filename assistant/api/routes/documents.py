"""/v1/documents: list, read, upload and delete documents of a collection (reads need the
collection in the key's read scopes, uploads and deletes in its write scopes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.convertors import PathConvertor, register_url_convertor

from assistant.api.deps import ReadKey, ReadKeyOrLink, ServiceDep, WriteKey
from assistant.api.errors import error_responses
from assistant.originals import MEDIA_TYPES
from assistant.schemas import CollectionName, DocumentDetail, DocumentList, UploadSummary
from assistant.uploads import Upload


class DocPath(PathConvertor):
    """A doc_id path that does not end in `/file`: that suffix is the original's route
    (GET .../file), which DELETE must not reach as a document named `.../file`."""

    regex = r".*(?<!/file)"


register_url_convertor("doc_path", DocPath())
router = APIRouter(prefix="/v1/documents", tags=["documents"])

DOC_ID_EXAMPLE = "articles/cx-quality-faults.md"  # a document of the sample corpus
# what GET .../file may answer with (OpenAPI): every original's own type
ORIGINAL_TYPES = sorted({*MEDIA_TYPES.values(), "text/html", "application/octet-stream"})
CollectionQuery = Annotated[CollectionName | None, Query()]
DocId = Annotated[str, Path(min_length=1, max_length=1024, examples=[DOC_ID_EXAMPLE])]


@router.get("", response_model=DocumentList, dependencies=[ReadKey],
            responses=error_responses(401, 403, 404, 422, 429, 503))
def list_documents(
    service: ServiceDep,
    collection: CollectionQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """Documents in a collection, by doc_id; `count` is the total, not the page size."""
    return service.list_documents(collection, limit, offset)


@router.get(
    "/{doc_id:path}/file", dependencies=[ReadKeyOrLink], response_class=FileResponse,
    responses={200: {"description": "The file as ingested, with its own media type.",
                     "content": {t.split(";")[0]: {} for t in ORIGINAL_TYPES}},
               **error_responses(401, 403, 404, 422, 429, 503)},
)
def get_original(
    service: ServiceDep, doc_id: DocId, collection: CollectionQuery = None,
    token: Annotated[str | None, Query(
        max_length=512, description="A signed link from the chat UI, in place of a key.")] = None,
) -> FileResponse:
    """The document's original file, as ingested (from an ingested folder or an upload).

    A PDF is served inline, so `#page=N` opens it at a citation's page; other formats are
    downloads. 404 when the document is not in the collection or its file is gone.
    """
    found = service.original(doc_id, collection)
    return FileResponse(
        found.path, media_type=found.media_type, filename=found.filename,
        content_disposition_type="inline" if found.inline else "attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )


@router.get("/{doc_id:doc_path}", response_model=DocumentDetail, dependencies=[ReadKey],
            responses=error_responses(401, 403, 404, 422, 429, 503))
def get_document(service: ServiceDep, doc_id: DocId,
                 collection: CollectionQuery = None) -> DocumentDetail:
    """One document: its metadata and its chunks in order (404 if it is not there)."""
    return service.document(doc_id, collection)


@router.post("", response_model=UploadSummary, dependencies=[WriteKey],
             responses=error_responses(400, 401, 403, 409, 413, 415, 422, 429, 503))
def upload_documents(
    service: ServiceDep,
    files: Annotated[list[UploadFile], File(description="One or more files to ingest.")],
    collection: CollectionQuery = None,
) -> UploadSummary:
    """Upload files (multipart field `files`, repeatable) and ingest them.

    Accepted: .md, .markdown, .txt, .html, .htm, .pdf, .docx, .pptx, .xlsx, .csv, each up to
    CX_UPLOAD_MAX_BYTES, at most CX_UPLOAD_MAX_FILES per request. File names are
    sanitised (directories dropped, unusual characters replaced) and become the doc_id;
    uploading the same name again re-indexes that document. Returns the ingest summary.
    """
    cap = service.settings.upload_max_bytes
    # Read one byte past the cap so an oversized file is detected without reading it all.
    uploads = [Upload(f.filename or "", f.file.read(cap + 1)) for f in files]
    return service.upload(uploads, collection)


@router.delete("/{doc_id:doc_path}", dependencies=[WriteKey],
               responses=error_responses(401, 403, 404, 409, 422, 429, 503))
def delete_document(service: ServiceDep, doc_id: DocId,
                    collection: CollectionQuery = None) -> dict[str, Any]:
    """Remove one document and all its chunks (404 if it is not there)."""
    removed = service.delete_document(doc_id, collection)
    return {"doc_id": doc_id, "deleted_chunks": removed}
