"""``nemesis-bkg remove``: remove the compact sources of FITS maps."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io.registry import IORegistryError
from astropy.table import Table

from ..engine.inference import CPU_BATCH_SIZE
from ..io import check_output_path, read_fits
from ..remover import CompactSourceRemover

__all__ = ["add_arguments", "command_line_wording", "parse_beam", "read_catalog", "read_psf",
           "reworded", "run"]


def parse_beam(text: str) -> u.Quantity | float:
    """
    Parse ``--beam-fwhm``: a plain number is pixels, anything else a Quantity.

    Examples
    --------
    >>> parse_beam("3.5")
    3.5
    >>> parse_beam("18.1 arcsec")
    <Quantity 18.1 arcsec>
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return u.Quantity(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r} as a beam: give pixels (3.5) or an angle ('18.1 arcsec')"
        ) from exc


#: Shown at the end of ``nemesis-bkg remove --help``.
EXAMPLES = """examples:
  nemesis-bkg remove spire250.fits -o spire250_nemesis.fits
  nemesis-bkg remove map.fits -o out.fits --beam-fwhm '18.1 arcsec' --regions-out holes.reg
  nemesis-bkg remove maps/*.fits --out-dir products --workers 4"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nemesis-bkg remove``."""
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", metavar="IN.fits", help="input FITS map(s)")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="OUT.fits", help="output file (one input)")
    out.add_argument("--out-dir", metavar="DIR",
                     help="output folder (several inputs); files are named IN_nemesis.fits, "
                     "files already done are skipped, a failing file does not stop the others")
    parser.add_argument("--instrument", metavar="BAND", help="band preset, e.g. pacs160 or "
                        "spire250 (default: read from the FITS header)")
    parser.add_argument("--beam-fwhm", type=parse_beam, metavar="FWHM",
                        help="beam FWHM: pixels (3.5) or an angle ('18.1 arcsec')")
    parser.add_argument("--snr-threshold", type=float, default=5.0, metavar="SNR",
                        help="mask sources above this peak SNR (default: 5)")
    parser.add_argument("--catalog", metavar="TABLE",
                        help="extra sources to mask: a table (ECSV, CSV, FITS) with x/y or ra/dec")
    parser.add_argument("--regions", metavar="FILE", help="extra regions to mask (DS9/CRTF)")
    parser.add_argument("--protect", metavar="FILE", help="regions never masked (DS9/CRTF)")
    parser.add_argument("--no-detect", action="store_true",
                        help="inpaint only --catalog/--regions, find no sources")
    parser.add_argument("--regions-out", metavar="FILE",
                        help="also write the holes as a DS9 region file (one input)")
    parser.add_argument("--psf", metavar="PSF.fits",
                        help="the beam as a FITS image at the maps' pixel size (odd sides, "
                        "centred): holes then follow its profile, sidelobes included")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "bfloat16", "float16"],
                        help="the network's arithmetic (default: float32; the others are mixed "
                        "precision, faster on GPUs)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for the network (default: PyTorch's)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help=f"most tiles per forward pass (default: {CPU_BATCH_SIZE} on a "
                        "CPU, sized to the free memory on a GPU)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--chunk-size", type=int, metavar="N",
                        help="with -o: process the map as a mosaic, in chunks of N x N pixels "
                        "read from a memory map (automatic for maps too large for memory)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="with --out-dir: run on a local Dask cluster of N workers")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="with --out-dir: run on the Dask scheduler at ADDRESS")


def read_catalog(path: str) -> Table:
    """
    Read ``--catalog``: any table astropy reads (ECSV, CSV, FITS, plain ASCII).

    Empty cells become NaN, so that a row with a missing position is an
    error rather than a hole at a made-up place.
    """
    try:
        try:
            table = Table.read(path)
        except IORegistryError:
            table = Table.read(path, format="ascii")
    except FileNotFoundError:
        raise
    except Exception as exc:  # astropy's readers raise many kinds of errors
        reason = next((line for line in str(exc).splitlines() if line.strip()),
                      type(exc).__name__)
        raise ValueError(f"cannot read the catalogue {path!r} as a table ({reason})") from exc
    for name in table.colnames:
        column = table[name]
        if getattr(column, "mask", None) is not None and column.dtype.kind in "iuf":
            table[name] = column.astype(float).filled(np.nan)
    return table


def read_psf(path: str) -> np.ndarray:
    """
    Read ``--psf``: the first image of a FITS file, as a 2-D float array.

    Degenerate axes (a 1 x N x N cube) are dropped; the masking checks the
    rest (odd sides, a centred peak) when the remover is made.
    """
    from astropy.io import fits

    with fits.open(path) as hdulist:
        image = next((hdu.data for hdu in hdulist if hdu.is_image and hdu.data is not None),
                     None)
        if image is None:
            raise ValueError(f"{path} holds no image to use as the PSF")
        return np.squeeze(np.asarray(image, dtype=float))


def _remover_options(args: argparse.Namespace) -> dict:
    """Keywords of `~nemesis_bkg.CompactSourceRemover` from the command line."""
    return {
        "instrument": args.instrument, "beam_fwhm": args.beam_fwhm,
        "snr_threshold": args.snr_threshold, "device": args.device,
        "psf": read_psf(args.psf) if args.psf else None, "precision": args.precision,
        "n_threads": args.threads, "batch_size": args.batch_size,
    }


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before the work, not after it, when an output cannot be written."""
    for output in (args.output, args.regions_out):
        if output is None:
            continue
        check_output_path(output, overwrite=args.overwrite)
        output_path = Path(output)
        if output_path.exists() and output_path.samefile(args.inputs[0]):
            raise ValueError(f"{output_path} is the input map; choose another output name")


#: Bytes the in-memory pipeline needs per pixel (measured: about 150 on a 1024x1024 map).
IN_MEMORY_BYTES_PER_PIXEL = 160


def _mosaic_chunk_size(args: argparse.Namespace) -> int | None:
    """The chunk side for the mosaic path, or None to process the map in memory."""
    if args.chunk_size is not None:
        if args.chunk_size < 1:
            raise ValueError(f"--chunk-size must be a positive number of pixels, "
                             f"got {args.chunk_size}")
        return args.chunk_size
    from astropy.io import fits

    from ..parallel.mosaic import CHUNK_SIZE

    try:
        with fits.open(args.inputs[0], memmap=True) as hdulist:
            pixels = max((hdu.header.get("NAXIS1", 0) * hdu.header.get("NAXIS2", 0)
                          for hdu in hdulist if hdu.is_image), default=0)
    except OSError:
        return None  # read_fits says what is wrong with the file
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return CHUNK_SIZE if pixels * IN_MEMORY_BYTES_PER_PIXEL > memory / 2 else None


def _run_mosaic(args: argparse.Namespace, remover: CompactSourceRemover,
                chunk_size: int) -> int:
    from ..parallel import remove_mosaic

    catalog = read_catalog(args.catalog) if args.catalog else None
    start = time.perf_counter()
    result = remove_mosaic(args.inputs[0], remover=remover, chunk_size=chunk_size,
                           detect=not args.no_detect, catalog=catalog, regions=args.regions,
                           protect=args.protect)
    # One chunk at a time: memory stays that of one chunk and its halo.
    result.write(args.output, overwrite=args.overwrite, chunks_at_once=1)
    if args.regions_out:
        # From the catalogue that write assembled: the mosaic is not computed again.
        result.regions().write(args.regions_out, format="ds9", overwrite=args.overwrite)
    print(
        f"{args.inputs[0]}: {_sources(len(result.catalog))} removed as a mosaic of "
        f"{result.source_mask.numblocks[0]}x{result.source_mask.numblocks[1]} chunks "
        f"(halo {result.halo} px, beam {result.fwhm_pixels:.2f} px, {result.instrument.name}) "
        f"in {time.perf_counter() - start:.1f} s -> {args.output}"
    )
    return 0


def _sources(count: int) -> str:
    """
    The number of sources, in words.

    Examples
    --------
    >>> _sources(1), _sources(0), _sources(12)
    ('1 source', '0 sources', '12 sources')
    """
    return f"{count} source{'' if count == 1 else 's'}"


def _run_one(args: argparse.Namespace, remover: CompactSourceRemover) -> int:
    _check_outputs(args)
    chunk_size = _mosaic_chunk_size(args)
    if chunk_size is not None:
        return _run_mosaic(args, remover, chunk_size)
    output_path = Path(args.output)
    catalog = read_catalog(args.catalog) if args.catalog else None
    start = time.perf_counter()
    nddata = read_fits(args.inputs[0])
    try:
        result = remover.remove(nddata, catalog=catalog, regions=args.regions,
                                protect=args.protect, detect=not args.no_detect)
    except ValueError as exc:
        # Say which map could not be processed (read_fits' own errors already do).
        raise ValueError(f"{args.inputs[0]}: {exc}") from exc
    result.write(output_path, overwrite=args.overwrite)
    if args.regions_out:
        result.regions().write(args.regions_out, format="ds9", overwrite=args.overwrite)
    print(
        f"{args.inputs[0]}: {_sources(len(result.catalog))} removed "
        f"({int(result.source_mask.sum())} pixels inpainted, beam "
        f"{result.fwhm_pixels:.2f} px, {result.instrument.name}) in "
        f"{time.perf_counter() - start:.1f} s -> {output_path}"
    )
    return 0


def _run_many(args: argparse.Namespace) -> int:
    from ..parallel import remove_files

    remover_kwargs = _remover_options(args)
    client = None
    if args.workers or args.scheduler:
        from distributed import Client, LocalCluster

        if args.scheduler:
            client = Client(args.scheduler)
        else:
            client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None))
    try:
        outcomes = remove_files(args.inputs, args.out_dir, client=client,
                                overwrite=args.overwrite, **remover_kwargs)
    finally:
        if client is not None:
            client.close()
    for row in outcomes:
        print(f"{row['input']}: {row['status']}: {row['message']}")
    failed = int((outcomes["status"] == "failed").sum())
    if failed:
        print(f"nemesis-bkg remove: {failed} of {len(outcomes)} files failed", file=sys.stderr)
    return 1 if failed else 0


#: Python keywords named in the library's messages, and the options that set them.
_OPTIONS = {"instrument": "--instrument", "beam_fwhm": "--beam-fwhm",
            "snr_threshold": "--snr-threshold", "n_threads": "--threads",
            "batch_size": "--batch-size"}


def command_line_wording(message: str) -> str:
    """
    Name the command-line options where a library message names Python keywords.

    Examples
    --------
    >>> command_line_wording("give instrument= (one of ...) or beam_fwhm= (pixels)")
    'give --instrument (one of ...) or --beam-fwhm (pixels)'
    >>> command_line_wording("n_threads must be a positive number, got 0")
    '--threads must be a positive number, got 0'
    """
    message = message.replace("overwrite=True (--overwrite)", "--overwrite")
    for keyword, option in _OPTIONS.items():
        message = re.sub(rf"\b{keyword}=(?=\S)", option + " ", message)
        # A bare "instrument" is the word, not the keyword.
        bare = rf"\b{keyword}=" if keyword == "instrument" else rf"\b{keyword}\b=?"
        message = re.sub(bare, option, message)
    return message


def reworded(error: Exception) -> Exception:
    """
    The same kind of error, its message in `command_line_wording`.

    Examples
    --------
    >>> reworded(ValueError("beam_fwhm must be positive and finite, got -3."))
    ValueError('--beam-fwhm must be positive and finite, got -3.')
    """
    for kind in (FileExistsError, ValueError, TypeError):
        if isinstance(error, kind):
            return kind(command_line_wording(str(error)))
    return error


def run(args: argparse.Namespace) -> int:
    """Run ``nemesis-bkg remove``; errors name the command-line options."""
    try:
        return _run(args)
    except (FileExistsError, ValueError, TypeError) as exc:
        raise reworded(exc) from exc


def _run(args: argparse.Namespace) -> int:
    if args.output is not None:
        if len(args.inputs) > 1:
            raise ValueError("several inputs need --out-dir DIR instead of -o")
        if args.workers or args.scheduler:
            raise ValueError("--workers and --scheduler go with --out-dir")
        remover = CompactSourceRemover(**_remover_options(args),
                                       progress=args.chunk_size is None)
        return _run_one(args, remover)
    if args.chunk_size is not None:
        raise ValueError("--chunk-size goes with -o OUT.fits (one mosaic)")
    if args.catalog or args.regions or args.protect or args.regions_out or args.no_detect:
        raise ValueError("--catalog, --regions, --protect, --regions-out and --no-detect "
                         "belong to one map: use -o OUT.fits with a single input")
    return _run_many(args)
