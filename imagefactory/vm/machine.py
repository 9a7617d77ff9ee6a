"""One QEMU process under QMP control, with a lifecycle that always cleans up.

`Machine` is an async context manager: entering boots QEMU (paused, so no event is missed,
then `cont`), leaving guarantees that no QEMU process, socket or temporary file survives --
on success, on exceptions and on Ctrl-C (asyncio turns it into a cancellation, and the exit
path still runs).  As a last line of defence QEMU is started with a parent-death signal, so
even a SIGKILLed factory takes its QEMU with it.

The monitor and the status channel are socketpairs whose far ends QEMU inherits: there is
no socket path to wait for, to race on, or to leave behind.  Every wait is raced against
the QEMU process exiting and against fatal QMP events, so a dead or stuck QEMU can never
hang the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog
from qemu.qmp import EventListener, QMPClient, QMPError

from imagefactory.errors import InfrastructureError
from imagefactory.vm.firmware import UefiFirmware, find_uefi_firmware
from imagefactory.vm.qemu_args import VmConfig, Wiring, build_argv
from imagefactory.vm.tempdir import VmTempDir

log = structlog.get_logger(__name__)


T = TypeVar("T")

WATCHED_EVENTS = (
    "SHUTDOWN",
    "POWERDOWN",
    "RESET",
    "STOP",
    "RESUME",
    "GUEST_PANICKED",
    "BLOCK_IO_ERROR",
)
MONITOR_TIMEOUT = 30.0
QUIT_GRACE = 10.0


class VmError(InfrastructureError):
    """QEMU failed, or the guest did something that ends the VM (panic, I/O error)."""


class MachineExited(VmError):
    """QEMU exited while the caller was waiting for something else."""

    def __init__(self, exit_code: int, detail: str) -> None:
        super().__init__(f"QEMU exited with status {exit_code} {detail}".rstrip())
        self.exit_code = exit_code


@dataclass(frozen=True)
class QmpEvent:
    name: str
    data: dict[str, Any]
    received: float


@dataclass
class ShutdownInfo:
    """How the VM ended: QEMU's exit status and what the monitor said about it."""

    exit_code: int
    reason: str | None = None
    guest_initiated: bool | None = None
    panicked: bool = False
    killed: bool = False
    exited_at: float = field(default_factory=time.monotonic)

    @property
    def clean(self) -> bool:
        """The guest powered itself off and QEMU exited normally."""
        return (
            self.exit_code == 0
            and not self.killed
            and not self.panicked
            and self.reason == "guest-shutdown"
        )


def _parent_death_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL`: QEMU dies with us even if we are SIGKILLed.

    The signal setting survives exec, so wrapping QEMU is enough; no preexec_fn (unsafe with
    threads) is needed.  Without setpriv (not util-linux) we rely on the context manager.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class Machine:
    """QEMU with the small API the pipeline needs: boot, wait_shutdown, powerdown, kill."""

    def __init__(
        self,
        config: VmConfig,
        *,
        log_dir: Path,
        qemu: str = "qemu-system-x86_64",
        uefi: UefiFirmware | None = None,
        monitor_timeout: float = MONITOR_TIMEOUT,
    ) -> None:
        self.config = config
        self.log_dir = log_dir
        self.console_log = log_dir / "console.log"
        self.qemu_log = log_dir / "qemu.log"
        self.qemu = qemu
        self.uefi = uefi
        self.monitor_timeout = monitor_timeout
        self.events: list[QmpEvent] = []
        self.booted_at: float | None = None
        self.shutdown_info: ShutdownInfo | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._exit_task: asyncio.Task[int] | None = None
        self._event_task: asyncio.Task[None] | None = None
        self._fatal: asyncio.Future[str] | None = None
        self._qmp: QMPClient | None = None
        self._listener: EventListener | None = None
        self._sockets: list[socket.socket] = []
        self._status_reader: asyncio.StreamReader | None = None
        self._status_writer: asyncio.StreamWriter | None = None
        self._tmpdir: Path | None = None
        self._vm_dir: VmTempDir | None = None
        self._killed = False
        self._exited_at: float | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Machine:
        await self.boot()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def temp_dir(self) -> Path | None:
        """This VM's private temporary directory (UEFI variables); removed at close."""
        return self._tmpdir

    @property
    def status_reader(self) -> asyncio.StreamReader:
        if self._status_reader is None:
            raise VmError("the machine has not booted")
        return self._status_reader

    async def boot(self) -> None:
        """Start QEMU paused, connect the monitor, subscribe to events, then run the guest."""
        if self._proc is not None:
            raise VmError("the machine was already booted")
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._vm_dir = VmTempDir.create(self.config.name, self.config.disk)
        self._tmpdir = self._vm_dir.path
        self._fatal = loop.create_future()
        qmp_ours, qmp_theirs = socket.socketpair()
        status_ours, status_theirs = socket.socketpair()
        self._sockets = [qmp_ours, qmp_theirs, status_ours, status_theirs]
        uefi_vars = None
        if self.config.firmware == "uefi":
            self.uefi = self.uefi or find_uefi_firmware(self.config.machine)
            uefi_vars = self._tmpdir / "uefi-vars.fd"
            shutil.copyfile(self.uefi.vars_template, uefi_vars)
        wiring = Wiring(
            qmp_fd=qmp_theirs.fileno(),
            status_fd=status_theirs.fileno(),
            console_log=self.console_log,
            uefi=self.uefi,
            uefi_vars=uefi_vars,
        )
        argv = build_argv(self.config, wiring, qemu=self.qemu)
        log.info("vm.start", vm=self.config.name, accel=self.config.accel, argv=argv)
        with self.qemu_log.open("wb") as qemu_log:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *_parent_death_prefix(),
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=qemu_log,
                    stderr=subprocess.STDOUT,
                    # The temporary directory's lock fd too: it stays locked (in use, for
                    # `gc`) as long as QEMU runs, even if we are killed.
                    pass_fds=(qmp_theirs.fileno(), status_theirs.fileno(), self._vm_dir.fd),
                    start_new_session=True,  # Ctrl-C goes to us; we stop QEMU in order.
                )
            except FileNotFoundError as exc:
                raise InfrastructureError(
                    f"{self.qemu} is not installed", hint="apt-get install qemu-system-x86"
                ) from exc
        # QEMU holds its own copies now; ours would keep the channels open after it exits.
        for sock in (qmp_theirs, status_theirs):
            sock.close()
            self._sockets.remove(sock)
        self._exit_task = asyncio.create_task(self._wait_exit(self._proc))
        self._qmp = QMPClient(self.config.name)
        try:
            await self.race(self._qmp.connect(qmp_ours), self.monitor_timeout, what="the monitor")
        except (QMPError, OSError, EOFError) as exc:
            # QEMU hung up during the handshake: it is exiting, so say why it exits.
            if await self.wait_shutdown(10) is not None:
                raise self._exited_error("while waiting for the monitor") from exc
            raise VmError(f"QEMU's monitor failed: {exc}") from exc
        self._listener = EventListener(WATCHED_EVENTS)
        self._qmp.register_listener(self._listener)
        self._event_task = asyncio.create_task(self._pump_events(self._listener))
        status_ours.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=status_ours)
        self._sockets.remove(status_ours)  # owned by the stream now
        self._status_reader, self._status_writer = reader, writer
        await self.race(self._qmp.execute("cont"), self.monitor_timeout, what="cont")
        self.booted_at = time.monotonic()
        log.info("vm.running", vm=self.config.name, pid=self._proc.pid)

    async def close(self) -> None:
        """Stop QEMU if it still runs and release everything we hold, in bounded time.

        A QEMU still running here is being abandoned (an error, a timeout, Ctrl-C: the
        normal end is `powerdown`), so it gets SIGKILL rather than a QMP `quit`: its disk
        is a throw-away volume or clone, and a monitor conversation can hang on a loaded
        host while the caller waits to exit.  Every wait below has its own limit and does
        not depend on a cancelled coroutine agreeing to finish.
        """
        self._kill_now()
        await self._release()

    def _kill_now(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)

    async def _release(self) -> None:
        """Let go of QEMU's channels, then of our files.  The channel steps are bounded and
        swallow their outcome; the `finally` is for a second Ctrl-C cancelling us in one of
        them, which must still not leave the VM's temporary directory or sockets behind."""
        try:
            await self._release_channels()
        finally:
            for sock in self._sockets:
                sock.close()
            self._sockets = []
            if self._vm_dir is not None:
                self._vm_dir.close()
                self._vm_dir = self._tmpdir = None

    async def _release_channels(self) -> None:
        if self._proc is not None and self._exit_task is not None:
            await _bounded(asyncio.shield(self._exit_task), 10)
            if self._exit_task.done():
                self._record_exit()
        if self._event_task is not None and not self._event_task.done():
            self._event_task.cancel()
            await _bounded(self._event_task, 5)
        if self._qmp is not None:
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    self._qmp.remove_listener(self._listener)
            # After QEMU hangs up, disconnect re-raises the reader's EOF: expected here.
            qmp, self._qmp = self._qmp, None
            await _bounded(qmp.disconnect(), 5)
        if self._status_writer is not None:
            writer, self._status_writer = self._status_writer, None
            writer.close()
            await _bounded(writer.wait_closed(), 5)

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> int:
        code = await proc.wait()
        self._exited_at = time.monotonic()
        return code

    # -- waiting ---------------------------------------------------------------------------

    async def race(self, awaitable: Awaitable[T], timeout: float | None, *, what: str) -> T:
        """Await something unless QEMU exits, a fatal event arrives, or time runs out first.

        Raises MachineExited, VmError (fatal event) or TimeoutError; the awaited task is
        cancelled in all three cases.
        """
        if self._exit_task is None or self._fatal is None:
            raise VmError("the machine has not booted")
        task = asyncio.ensure_future(awaitable)
        watched: set[asyncio.Future[Any]] = {task, self._exit_task, self._fatal}
        try:
            done, _ = await asyncio.wait(
                watched,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task in done:
                return task.result()
            if self._fatal in done:
                raise VmError(f"while waiting for {what}: {self._fatal.result()}")
            if self._exit_task in done:
                self._record_exit()
                raise self._exited_error(f"while waiting for {what}")
            raise TimeoutError(f"{what} did not happen within {timeout:g}s")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _exited_error(self, detail: str) -> MachineExited:
        """MachineExited carrying the end of QEMU's own log, which says why it stopped."""
        assert self._exit_task is not None
        try:
            lines = self.qemu_log.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            lines = []
        if lines:
            detail += "\n" + "\n".join(lines)
        return MachineExited(self._exit_task.result(), detail)

    async def wait_shutdown(self, timeout: float | None = None) -> ShutdownInfo | None:
        """Wait for QEMU to exit; None if it is still running after `timeout` seconds."""
        if self._exit_task is None:
            raise VmError("the machine has not booted")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exit_task), timeout)
        if not self._exit_task.done():
            return None
        return self._record_exit()

    async def powerdown(self, grace: float = 60.0, quit_grace: float = QUIT_GRACE) -> ShutdownInfo:
        """ACPI power button; `quit` if the guest ignores it; SIGKILL only as the last step."""
        if self.running and self._qmp is not None:
            log.info("vm.powerdown", vm=self.config.name, grace=grace)
            with contextlib.suppress(QMPError, OSError, EOFError):
                await asyncio.wait_for(self._qmp.execute("system_powerdown"), 10)
            info = await self.wait_shutdown(grace)
            if info is not None:
                return info
            log.warning("vm.powerdown_ignored", vm=self.config.name, grace=grace)
        with contextlib.suppress(asyncio.TimeoutError, QMPError, OSError, EOFError):
            await self._quit(quit_grace)
        if self.running:
            return await self.kill()
        info = await self.wait_shutdown(quit_grace)
        return info if info is not None else await self.kill()

    async def _quit(self, grace: float) -> None:
        if self._qmp is None or not self.running:
            return
        log.info("vm.quit", vm=self.config.name)
        with contextlib.suppress(QMPError, EOFError):  # QEMU may hang up before replying
            await asyncio.wait_for(self._qmp.execute("quit"), grace)
        await self.wait_shutdown(grace)

    async def kill(self) -> ShutdownInfo:
        """SIGKILL QEMU and wait for it; for timeouts and wedged guests only."""
        if self.running:
            log.warning("vm.kill", vm=self.config.name, pid=self.pid)
        self._kill_now()
        info = await self.wait_shutdown(30)
        if info is None:
            raise VmError(f"QEMU (pid {self.pid}) did not exit after SIGKILL")
        return info

    # -- events ----------------------------------------------------------------------------

    async def _pump_events(self, listener: EventListener) -> None:
        async for message in listener:
            name = str(message["event"])
            payload = message.get("data")
            data: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
            self.events.append(QmpEvent(name, data, time.monotonic()))
            if name == "GUEST_PANICKED":
                log.error("vm.guest_panicked", vm=self.config.name, data=data)
                self._set_fatal(f"the guest kernel panicked: {data}")
            elif name == "BLOCK_IO_ERROR":
                log.error("vm.block_io_error", vm=self.config.name, data=data)
                if data.get("action") == "stop":
                    self._set_fatal(f"disk I/O error stopped the VM: {data}")
            elif name in ("SHUTDOWN", "RESET"):
                log.info(f"vm.{name.lower()}", vm=self.config.name, **data)
            else:
                log.debug("vm.event", vm=self.config.name, qmp_event=name, data=data)

    def _set_fatal(self, message: str) -> None:
        if self._fatal is not None and not self._fatal.done():
            self._fatal.set_result(message)

    def _record_exit(self) -> ShutdownInfo:
        if self.shutdown_info is not None:
            return self.shutdown_info
        assert self._proc is not None and self._proc.returncode is not None
        shutdown = next((e for e in reversed(self.events) if e.name == "SHUTDOWN"), None)
        info = ShutdownInfo(
            exit_code=self._proc.returncode,
            reason=str(shutdown.data.get("reason")) if shutdown else None,
            guest_initiated=bool(shutdown.data.get("guest")) if shutdown else None,
            panicked=any(e.name == "GUEST_PANICKED" for e in self.events),
            killed=self._killed,
            exited_at=self._exited_at or time.monotonic(),
        )
        self.shutdown_info = info
        log.info(
            "vm.exited",
            vm=self.config.name,
            exit_code=info.exit_code,
            reason=info.reason,
            killed=info.killed,
        )
        return info


async def _bounded(awaitable: Awaitable[object], seconds: float) -> None:
    """Await for at most `seconds`, whatever the outcome.  Unlike `asyncio.wait_for`, a
    late awaitable is cancelled and left behind, not waited for until it agrees to stop."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return
    if not task.cancelled():
        task.exception()  # retrieved: an expected EOF or reset must not be logged as lost
