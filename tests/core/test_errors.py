"""Every error knows its HTTP status and CLI exit code."""

from __future__ import annotations

import pytest

from embedstore import errors


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.InvalidQuery, 400),
        (errors.Unauthorized, 401),
        (errors.PathNotAllowed, 403),
        (errors.CollectionNotFound, 404),
        (errors.ItemNotFound, 404),
        (errors.CollectionExists, 409),
        (errors.DimensionMismatch, 409),
        (errors.EncoderMismatch, 409),
        (errors.PayloadTooLarge, 413),
        (errors.UnsupportedMediaType, 415),
        (errors.InvalidMedia, 422),
        (errors.UnknownEncoder, 422),
        (errors.UnknownModality, 422),
        (errors.WeightsNotFound, 503),
    ],
)
def test_status_codes(cls: type[errors.EmbedstoreError], status: int) -> None:
    err = cls("boom")
    assert isinstance(err, errors.EmbedstoreError)
    assert err.status_code == status
    assert err.exit_code not in (0,)
    assert str(err) == "boom"


def test_invalid_media_keeps_the_uri() -> None:
    err = errors.InvalidMedia("cat.jpg: truncated JPEG", uri="/data/cat.jpg")
    assert err.uri == "/data/cat.jpg"
    assert "cat.jpg" in str(err)
