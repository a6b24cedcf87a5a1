"""CHL/QRY answers: the vectors of PROTOCOL.md and the seeds, defaults by version."""

from __future__ import annotations

import hashlib

import pytest

from puppets.challenge import PRODUCT_KEYS, answer, default_product

MSMSGS = ("msmsgs@msnmsgr.com", "Q1P7W2E4J9R8U3S5")


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        ("15570131571988941333", "8f2f5a91b72102cd28355e9fc9000d6e"),  # seed deck
        ("12345678901234567890", "8ba1bb9d6dbf624fee31a2053af5fdd0"),
        ("11111111111111111111", "3b6666b60157322b6fc6e41a115968f5"),  # MSNP6 seed page
    ],
)
@pytest.mark.parametrize("protocol", [6, 7, 8, 9, 10])
def test_md5_vectors(challenge: str, expected: str, protocol: int) -> None:
    assert answer(challenge, protocol) == expected
    assert answer(challenge, protocol, *MSMSGS) == expected


@pytest.mark.parametrize(
    ("challenge", "product_id", "product_key", "expected"),
    [
        (
            "22210219642164014968",
            "PROD0090YUAUV{2B",
            "YMM8C_H7KCQ2S_KL",
            "85ecb0db8f32113df79ce0892b9a102c",
        ),
        (
            "13038318816579321232",
            "PROD0101{0RM?UBW",
            "CFHUR$52U_{VIX5T",
            "5f6ae998b8fa70c37b62980f71a0e736",
        ),
        (
            "11533365622852247127",
            "PROD0113H11T8$X_",
            "RG@XY*28Q5QHS%Q5",
            "f086d1ded067186deca8dba2231602cf",
        ),
        (
            "237191752526424888127371168",  # not a multiple of 8 with the id: padding
            "PROD0113H11T8$X_",
            "RG@XY*28Q5QHS%Q5",
            "65b6b623c649c25629af048d34066040",
        ),
    ],
)
def test_msnp11_vectors(challenge: str, product_id: str, product_key: str, expected: str) -> None:
    for protocol in (11, 12, 13, 15, 18):
        assert answer(challenge, protocol, product_id, product_key) == expected


def test_defaults_by_version() -> None:
    assert default_product(2) == MSMSGS  # pre-CHL versions fall back to the 6-10 pair
    assert default_product(6) == default_product(10) == MSMSGS
    assert default_product(11) == default_product(12) == ("PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL")
    assert default_product(13) == default_product(14) == ("PROD01065C%ZFN6F", "O4BG@C7BWLYQX?5G")
    assert default_product(15) == default_product(18) == ("PROD0113H11T8$X_", "RG@XY*28Q5QHS%Q5")
    # The defaults are used when no pair is given.
    assert answer("22210219642164014968", 11) == "85ecb0db8f32113df79ce0892b9a102c"
    assert answer("22210219642164014968", 12) == "85ecb0db8f32113df79ce0892b9a102c"
    assert answer("11533365622852247127", 15) == "f086d1ded067186deca8dba2231602cf"
    assert answer("237191752526424888127371168", 18) == "65b6b623c649c25629af048d34066040"


def test_explicit_md5_pairs_use_their_key() -> None:
    challenge = "15570131571988941333"
    for product_id, product_key in PRODUCT_KEYS[(6, 10)]:
        expected = hashlib.md5((challenge + product_key).encode()).hexdigest()
        assert answer(challenge, 8, product_id, product_key) == expected
    others = {answer(challenge, 8, pid, key) for pid, key in PRODUCT_KEYS[(6, 10)]}
    assert len(others) == 4


def test_msnp11_depends_on_the_product_id_and_the_version() -> None:
    challenge = "22210219642164014968"
    pid, key = "PROD0090YUAUV{2B", "YMM8C_H7KCQ2S_KL"
    base = answer(challenge, 11, pid, key)
    assert answer(challenge, 11, "PROD0090YUAUV{2C", key) != base  # the id is hashed in
    # Same pair, MSNP10: the plain MD5 algorithm.
    assert answer(challenge, 10, pid, key) == hashlib.md5((challenge + key).encode()).hexdigest()


def test_every_listed_pair_answers_in_shape() -> None:
    for (low, _high), pairs in PRODUCT_KEYS.items():
        for pid, key in pairs:
            result = answer("13038318816579321232", low, pid, key)
            assert len(result) == 32 and result == result.lower()
            int(result, 16)
