"""Chinese patient names decode right whatever charset the modality used."""

import pytest

from hub.domain.names import display_name
from hub.orthanc.charset import decode_person_name

NAME = "Wang^XiaoDong=王^小东"


@pytest.mark.parametrize(("raw", "charset"), [
    (NAME.encode("gb18030"), b"GB18030"),
    (NAME.encode("gbk"), b"GBK"),
    (NAME.encode("utf-8"), b"ISO_IR 192"),
    (b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab", b"\\ISO 2022 IR 58"),
])
def test_chinese_name_decodes(raw, charset):
    assert decode_person_name(raw, charset) == NAME
    assert display_name(decode_person_name(raw, charset)) == "王小东"


def test_latin1_name_decodes():
    assert decode_person_name(b"Buc^J\xe9r\xf4me", b"ISO_IR 100") == "Buc^Jérôme"
    assert display_name("Buc^Jérôme") == "Buc Jérôme"


def test_missing_name_is_empty_not_error():
    assert decode_person_name(None, b"GB18030") == ""
