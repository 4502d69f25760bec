from schemas import apikeys


def test_generated_key_parses_back() -> None:
    plaintext, parts = apikeys.generate()
    assert plaintext.startswith("fpk_")
    assert apikeys.parse(plaintext) == parts


def test_malformed_keys_do_not_parse() -> None:
    for bad in [
        "",
        "fpk_",
        "fpk_short_short",
        "xyz_" + "a" * 12 + "_" + "b" * 43,
        "fpk_" + "a" * 12 + "_" + "b" * 44,
    ]:
        assert apikeys.parse(bad) is None


def test_verify_is_keyed_and_exact() -> None:
    _, parts = apikeys.generate()
    stored = apikeys.hash_secret(b"pepper-1", parts.secret)
    assert apikeys.verify(b"pepper-1", parts.secret, stored)
    assert not apikeys.verify(b"pepper-2", parts.secret, stored)
    assert not apikeys.verify(b"pepper-1", parts.secret[:-1] + "A", stored) or parts.secret.endswith("A")
